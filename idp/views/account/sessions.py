"""Where the user is signed in (and ending those sessions), and their recent sign-in attempts."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import session, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.management.users import end_sessions
from idp.store.tables import User, UserSession
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import confirmation, page, record_change, redirect_with
from idp.views.account_changes import SESSIONS_ENDED, Change
from idp.views.management import management_as
from idp.views.plain_words import activity, one_row_per_action
from idp.views.session_state import SID_KEY
from idp.web import durable_store
from idp.words import _

HISTORY_EVENTS = ("sign_in", "consent", "factor_enrolment", "account_change", "sign_out")


@blueprint.route("/sessions")
@login_required
def sessions() -> BaseResponse:
    rows = durable_store().sessions.of_user(account_holder().id, now=int(time.time()))
    return page(
        "account_sessions.html",
        sessions=rows,
        current=session.get(SID_KEY),
    )


@blueprint.route("/sessions/<sid>/end", methods=["POST"])
@fresh_login_required
def end_session(sid: str) -> BaseResponse:
    ended = _end(lambda row: row.sid == sid and sid != session.get(SID_KEY))
    return redirect_with(
        url_for("account.sessions"), _("%(count)s session(s) ended.", count=ended), "success"
    )


@blueprint.route("/sessions/end-others")
@login_required
def confirm_ending_other_sessions() -> BaseResponse:
    return confirmation(
        title=_("End all other sessions?"),
        message=_("Every other browser signed in as you will have to sign in again."),
        action=url_for("account.end_other_sessions"),
        button=_("End all other sessions"),
    )


@blueprint.route("/sessions/end-others", methods=["POST"])
@fresh_login_required
def end_other_sessions() -> BaseResponse:
    ended = _end(_another_browser)
    return redirect_with(
        url_for("account.sessions"), _("%(count)s session(s) ended.", count=ended), "success"
    )


def _another_browser(row: UserSession) -> bool:
    return row.sid != session.get(SID_KEY)


def _end(chosen: Callable[[UserSession], bool]) -> int:
    """End the chosen sessions, telling the user when there were any."""
    user = account_holder()
    ended = end_sessions_of(user, chosen)
    if ended:
        record_change(user, Change(SESSIONS_ENDED, {"count": ended}))
    return ended


def end_sessions_of(user: User, chosen: Callable[[UserSession], bool] = _another_browser) -> int:
    """End the chosen sessions of the user (by default every session but this browser's), telling their
    clients. Returns how many were ended."""
    return end_sessions(
        management_as("account", user.id), user, reason="ended from another session", chosen=chosen
    )


@blueprint.route("/history")
@login_required
def history() -> BaseResponse:
    events = one_row_per_action(
        e for e in durable_store().audit.of_user(account_holder().id, limit=100) if e.event in HISTORY_EVENTS
    )
    apps = {row.client_id: row.name for row in durable_store().clients.all()}
    return page("account_history.html", events=[(event, activity(event, apps)) for event in events[:50]])
