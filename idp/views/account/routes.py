"""The account blueprint with every account page's routes on it: what the app registers."""

from idp.views.account import blueprint, email, factors, password, recovery, sessions

__all__ = ["blueprint", "email", "factors", "password", "recovery", "sessions"]
