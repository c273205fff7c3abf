"""The account pages' blueprint, on which each page module registers its routes."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("account", __name__, url_prefix="/account")
