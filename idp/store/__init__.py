"""Durable (SQLAlchemy) and ephemeral (Redis or embedded) storage."""
