"""Verifying what a user proves, and the pure policy that decides whether it is enough."""
