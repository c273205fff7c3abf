"""The admin console at /admin (issue 17): hosted pages on the management layer that the CLI and the
admin API use. An administrator whose session reached the admin level within [admin] max_age may use
it (else a step-up through the sign-in pipeline); anyone else is refused. Every action is audited with
the administrator's subject by the management layer. Importing the package registers the routes."""

from __future__ import annotations

from idp.views.console import audit, clients, users
from idp.views.console.blueprint import blueprint

__all__ = ["audit", "blueprint", "clients", "users"]
