"""The account overview: the user's sign-in methods and how many recovery codes are left."""

from __future__ import annotations

from werkzeug.wrappers import Response as BaseResponse

from idp.store.tables import FactorKind
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, login_required
from idp.views.account.pages import describe, page
from idp.web import durable_store


@blueprint.route("")
@login_required
def overview() -> BaseResponse:
    factors = durable_store().factors.of_user(account_holder().id)
    listed = [describe(f) for f in factors if f.kind != FactorKind.RECOVERY_CODE]
    recovery_left = sum(1 for f in factors if f.kind == FactorKind.RECOVERY_CODE)
    return page("account.html", factors=listed, recovery_left=recovery_left)
