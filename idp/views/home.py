"""The provider's own front page: who is signed in here, and a way to sign out."""

from __future__ import annotations

from flask import Blueprint, render_template

from idp.views.account.guard import signed_in_or_none

blueprint = Blueprint("home", __name__)


@blueprint.route("/")
def index() -> str:
    return render_template("home.html", user=signed_in_or_none())
