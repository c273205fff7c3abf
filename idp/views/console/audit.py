"""The audit log in the console: by user name, client, event and time, newest first, a page at a time."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response as BaseResponse

from idp.management import audit, users
from idp.management.context import ManagementError
from idp.views.account.guard import administrator_required
from idp.views.account.pages import page
from idp.views.console.blueprint import blueprint
from idp.views.console.pages import acting

PAGE_SIZE = 50
MAX_FIELD = 200


@blueprint.route("/audit")
@administrator_required
def audit_page() -> BaseResponse:
    management = acting()
    asked = {name: request.args.get(name, "")[:MAX_FIELD].strip() for name in ("user", "client_id", "event")}
    before_id = request.args.get("before_id", type=int)
    try:
        user_id = users.user_named(management, asked["user"]).id if asked["user"] else None
        events = audit.query_audit(
            management,
            user_id=user_id,
            client_id=asked["client_id"] or None,
            event=asked["event"] or None,
            before_id=before_id,
            limit=PAGE_SIZE,
        )
    except ManagementError as refused:
        return page("admin_audit.html", asked=asked, events=[], error=str(refused), status=400)
    older = events[-1].id if len(events) == PAGE_SIZE else None
    return page("admin_audit.html", asked=asked, events=events, older=older)
