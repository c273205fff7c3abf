"""The account pages: what a signed-in user sees of their factors, sessions, offline apps and history.

Every change needs a fresh MFA sign-in (the same step-up as relying parties get), is audited, and
is told to the user's verified addresses. Importing the package registers every page's routes.
"""

from __future__ import annotations

from idp.views.account import (
    applications,
    email,
    factors,
    offline_access,
    overview,
    password,
    recovery,
    sessions,
)
from idp.views.account.blueprint import blueprint

__all__ = [
    "applications",
    "blueprint",
    "email",
    "factors",
    "offline_access",
    "overview",
    "password",
    "recovery",
    "sessions",
]
