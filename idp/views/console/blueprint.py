"""The admin console's blueprint, on which each page module registers its routes."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.views.account.guard import administrator_required

blueprint = Blueprint("admin_console", __name__, url_prefix="/admin")


@blueprint.route("/")
@administrator_required
def home() -> BaseResponse:
    return redirect(url_for("admin_console.users"))
