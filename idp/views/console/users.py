"""Users in the console: search with paging, a user's factors, sessions and history, and the actions
(reset MFA, disable, enable, end sessions), each a management operation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flask import request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.management import audit, users
from idp.management.context import Management, NotFound
from idp.store.tables import FactorKind, User
from idp.views.account.guard import administrator_required
from idp.views.account.pages import describe, page
from idp.views.console.blueprint import blueprint
from idp.views.console.pages import acting, perform
from idp.views.errors import not_found
from idp.words import _

PAGE_SIZE = 20
HISTORY = 50
MAX_SEARCH = 200


@blueprint.route("/users")
@administrator_required
def users_page() -> BaseResponse:
    text = request.args.get("q", "")[:MAX_SEARCH]
    number = max(1, request.args.get("page", 1, type=int) or 1)
    found = users.search_users(acting(), text, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-found.total // PAGE_SIZE))
    return page("admin_users.html", found=found, q=text, number=number, pages=pages)


@blueprint.route("/users/<user_id>")
@administrator_required
def user_page(user_id: str) -> BaseResponse:
    management = acting()
    try:
        member = users.user_with_id(management, user_id)
    except NotFound as missing:
        return not_found(str(missing))
    held = users.factors_of(management, member)
    return page(
        "admin_user.html",
        member=member,
        factors=[describe(factor) for factor in held if factor.kind != FactorKind.RECOVERY_CODE],
        recovery_left=sum(1 for factor in held if factor.kind == FactorKind.RECOVERY_CODE),
        sessions=users.sessions_of(management, member),
        events=audit.query_audit(management, user_id=member.id, limit=HISTORY),
    )


def _on_user(user_id: str, operation: Callable[[Management, User], str]) -> BaseResponse:
    """Run `operation` on the user, then show their page with what it did."""
    return perform(
        lambda management: operation(management, users.user_with_id(management, user_id)),
        then=url_for("admin_console.user_page", user_id=user_id),
    )


@blueprint.route("/users/<user_id>/reset-mfa", methods=["POST"])
@administrator_required
def reset_mfa(user_id: str) -> BaseResponse:
    return _on_user(
        user_id,
        lambda management, member: _(
            "Every second factor of %(name)s removed (%(count)s with the recovery codes): they set one up "
            "at their next sign-in.",
            name=member.username,
            count=users.reset_mfa(management, member),
        ),
    )


@blueprint.route("/users/<user_id>/disable", methods=["POST"])
@administrator_required
def disable(user_id: str) -> BaseResponse:
    return _on_user(user_id, partial(_set_disabled, disabled=True))


@blueprint.route("/users/<user_id>/enable", methods=["POST"])
@administrator_required
def enable(user_id: str) -> BaseResponse:
    return _on_user(user_id, partial(_set_disabled, disabled=False))


@blueprint.route("/users/<user_id>/end-sessions", methods=["POST"])
@administrator_required
def end_sessions(user_id: str) -> BaseResponse:
    return _on_user(
        user_id,
        lambda management, member: _(
            "%(count)s session(s) of %(name)s ended.",
            count=users.end_user_sessions(management, member),
            name=member.username,
        ),
    )


def _set_disabled(management: Management, member: User, *, disabled: bool) -> str:
    users.set_disabled(management, member, disabled=disabled)
    if disabled:
        return _("%(name)s is disabled.", name=member.username)
    return _("%(name)s is enabled.", name=member.username)
