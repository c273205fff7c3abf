"""Who may use the account pages: flask-login's current user is the session's subject once the pipeline
says the session reaches the minimum level; changes also need a proof within the reauthentication age.
The admin console adds the pipeline's administrative requirement (`administrator_required`).

flask-login loads the user per request (`request_loader`) rather than from an id it stored itself:
the server-side session holds proofs, and only the pipeline can say whether they are enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import flask_login
from flask import Request, abort, jsonify, redirect, request, url_for
from flask_login import LoginManager, current_user
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.pipeline import Done, Requirement, administrative_requirement, requirement_for
from idp.store.tables import User
from idp.views import session_state
from idp.views import sign_in_request as sign_ins
from idp.views.sign_in_request import AccountPage
from idp.web import services
from idp.words import _

__all__ = [
    "account_holder",
    "administrator_required",
    "fresh_login_required",
    "login_manager",
    "login_required",
    "reauthentication_required",
    "signed_in_or_none",
]

View = TypeVar("View", bound=Callable[..., Any])

login_manager = LoginManager()
login_manager.session_protection = None  # the session is server-side and re-keyed at every proof


def account_holder() -> User:
    """The signed-in user of a view behind `login_required`."""
    return cast(User, current_user._get_current_object())


def signed_in_or_none() -> User | None:
    """The signed-in user where signing in is optional (the front page)."""
    return account_holder() if current_user.is_authenticated else None


def account_requirement(*, fresh: bool, every_proof: bool = False) -> Requirement:
    """The minimum level; when `fresh`, proven within the reauthentication age (of a recent step-up
    made for these pages, which they honour for a short grace: the page and the form posted from it);
    when `every_proof`, as with prompt=login (OIDC Core 3.1.2.1) every proof is made for these pages:
    the current password (or a passkey) as well as a second factor."""
    found = services()
    max_age = found.settings.account.reauthentication_max_age if fresh else None
    return requirement_for(
        policy=found.policy,
        scopes=[],
        acr_values=None,
        claims=None,
        max_age=None if max_age is None else str(max_age),
        prompt="login" if every_proof else None,
        client_default_acr_values=[],
        client_default_max_age=None,
        now=(session_state.reauthentication_time() if fresh else None) or time.time(),
    )


def load_signed_in_user(_request: Request) -> User | None:
    step, user = sign_ins.decide(account_requirement(fresh=False))
    return user if isinstance(step, Done) else None


def sign_in_first() -> BaseResponse:
    return _sign_in_for(account_requirement(fresh=False))


login_manager.request_loader(load_signed_in_user)
login_manager.unauthorized_handler(sign_in_first)


def login_required(view: View) -> View:
    """flask-login's `login_required`: the session reaches the minimum level, else a sign-in first."""
    return cast(View, flask_login.login_required(view))


def _meeting(
    requirement_of: Callable[[], Requirement], *, after_form: str = "account.overview"
) -> Callable[[View], View]:
    """`login_required`, and the pipeline's Done for `requirement_of()`, else the sign-in reaching it
    (returning to the page, or to the `after_form` endpoint when a form was posted)."""

    def decorate(view: View) -> View:
        @wraps(view)
        @login_required
        def guarded(*args: Any, **kwargs: Any) -> Any:
            requirement = requirement_of()
            step, _user = sign_ins.decide(requirement)
            if not isinstance(step, Done):
                return _sign_in_for(requirement, after_form=after_form)
            return view(*args, **kwargs)

        return cast(View, guarded)

    return decorate


# A proof within the reauthentication age (flask-login's "fresh" login), else a step-up.
fresh_login_required = _meeting(lambda: account_requirement(fresh=True))
# The whole minimum level proven again for this page: a session alone, however fresh, cannot make
# the change (else a step-up asking for all of it).
reauthentication_required = _meeting(lambda: account_requirement(fresh=True, every_proof=True))


def administrator_required(view: View) -> View:
    """An administrator (else 403) whose session reached the admin level within [admin] max_age, judged
    now (no grace after a step-up: the admin max age is the whole allowance), else a step-up for it."""
    stepped_up = _meeting(
        lambda: administrative_requirement(services().policy, time.time()), after_form="admin_console.home"
    )(view)

    @wraps(view)
    @login_required
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not account_holder().is_admin:
            abort(403)
        return stepped_up(*args, **kwargs)

    return cast(View, guarded)


def _sign_in_for(requirement: Requirement, *, after_form: str = "account.overview") -> BaseResponse:
    """Start the sign-in that reaches `requirement`, returning to this page (or `after_form` after a form)."""
    path = request.path if request.method == "GET" else url_for(after_form)
    sign_in = sign_ins.start(AccountPage(path=path), requirement)
    target = url_for("oidc.resume", sign_in_id=sign_in.id)
    if request.is_json:
        response = jsonify(error=_("Confirm it is you first."), redirect=target)
        response.status_code = 401
        return response
    return redirect(target)
