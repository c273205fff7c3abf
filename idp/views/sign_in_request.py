"""The sign-in in progress: where it ends (a client or one of our pages), what it requires, which
browser it belongs to and the language its pages speak; stored, loaded, decided and finished here."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from flask import Request, current_app, g, request
from werkzeug.exceptions import HTTPException

from idp.auth.pipeline import Requirement, Step, next_step, requirement_from_json, requirement_to_json
from idp.auth.quotas import Usage
from idp.languages import N_
from idp.store.tables import User
from idp.views.session_state import (
    account_as_last_proven,
    browser_binding,
    current_state,
    load_account,
    read_beside_session,
    signed_in_user,
)
from idp.web import audit, services
from idp.words import _

KEY_PREFIX = "authz:"
MAX_ID_LENGTH = 64
LANGUAGE = "sign_in_language"  # on `g`: the language of the sign-in this request is a page of


@dataclass(frozen=True)
class ClientRedirect:
    """Ends with an authorization code for a client: its validated request, replayed when done."""

    client_id: str
    client_name: str
    redirect_uri: str
    params: dict[str, str]


@dataclass(frozen=True)
class AccountPage:
    """Ends back on one of the provider's own pages (a step-up for an account change)."""

    path: str
    client_name: str = N_("Your account")


@dataclass(frozen=True)
class DeviceApproval:
    """Ends with a device approved (RFC 8628): the request the user code named, confirmed at /device."""

    client_id: str
    client_name: str
    user_code: str


Destination = ClientRedirect | AccountPage | DeviceApproval
DESTINATION_KINDS: dict[str, type[Destination]] = {
    "client": ClientRedirect,
    "account": AccountPage,
    "device": DeviceApproval,
}


@dataclass(frozen=True)
class SignInRequest:
    """A sign-in waiting for enough proof; `browser` binds it to the browser that started it, and
    `language` (a tag: the client's ui_locales, then the switcher's choice on its pages) is what its
    pages speak, when set."""

    id: str
    destination: Destination
    requirement: Requirement
    browser: str
    language: str | None = None

    @property
    def client_name(self) -> str:
        """Who asks, as the pages say it: the client's registered name, or "Your account"."""
        destination = self.destination
        return _(destination.client_name) if isinstance(destination, AccountPage) else destination.client_name

    @property
    def client_id(self) -> str | None:
        return None if isinstance(self.destination, AccountPage) else self.destination.client_id

    def to_json(self) -> bytes:
        kind = next(name for name, kind in DESTINATION_KINDS.items() if isinstance(self.destination, kind))
        return json.dumps(
            {
                "id": self.id,
                "destination": {"kind": kind, **asdict(self.destination)},
                "requirement": requirement_to_json(self.requirement),
                "browser": self.browser,
                "language": self.language,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SignInRequest:
        data: dict[str, Any] = json.loads(raw)
        fields = dict(data["destination"])
        destination: Destination = DESTINATION_KINDS[fields.pop("kind")](**fields)
        return cls(
            id=data["id"],
            destination=destination,
            requirement=requirement_from_json(data["requirement"]),
            browser=data["browser"],
            language=data.get("language"),
        )


class TooManySignIns(Exception):
    """This address started as many sign-ins as the sign-in lifetime allows it."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many sign-ins from this address")
        self.retry_after = retry_after


def read_along(request: Request) -> list[str]:
    """The sign-in a page names in its URL (`sign_in_id`), read in the round trip that loads the
    browser's session: `load` needs both."""
    sign_in_id = (request.view_args or {}).get("sign_in_id")
    if not isinstance(sign_in_id, str) or not 0 < len(sign_in_id) <= MAX_ID_LENGTH:
        return []
    return [KEY_PREFIX + sign_in_id]


def start(
    destination: Destination, requirement: Requirement, *, language: str | None = None
) -> SignInRequest:
    """Store a new sign-in for this browser, for the configured sign-in lifetime; raises
    TooManySignIns once this address has started its quota of them (nothing is stored then)."""
    found = services()
    quota = found.quotas.sign_ins
    if found.quotas.use(quota, address=request.remote_addr) is not Usage.WITHIN:
        raise TooManySignIns(retry_after=quota.window)
    browser = browser_binding(create=True)
    assert browser is not None
    sign_in = SignInRequest(
        id=secrets.token_urlsafe(24),
        destination=destination,
        requirement=requirement,
        browser=browser,
        language=language,
    )
    found.ephemeral.put(
        KEY_PREFIX + sign_in.id, sign_in.to_json(), ttl=found.settings.tokens.sign_in_lifetime
    )
    return _speaking(sign_in)


def load(sign_in_id: str) -> SignInRequest | None:
    """The sign-in in progress, only for the browser that started it: any other browser spends it
    (a victim's sign-in finished with an attacker's identity would be login CSRF)."""
    if not sign_in_id or len(sign_in_id) > MAX_ID_LENGTH:
        return None
    raw = read_beside_session(KEY_PREFIX + sign_in_id)
    if raw is None:
        return None
    sign_in = SignInRequest.from_json(raw)
    browser = browser_binding(create=False)
    if browser is None or not hmac.compare_digest(browser, sign_in.browser):
        services().ephemeral.delete(KEY_PREFIX + sign_in_id)
        audit("sign_in", "failure", client_id=sign_in.client_id, detail={"error": "another browser"})
        return None
    return _speaking(sign_in)


def peek(sign_in_id: str) -> SignInRequest | None:
    """The sign-in in progress when this browser started it; unlike `load`, nothing is spent (a
    password reset link opened in another browser leaves the sign-in it was asked from alone)."""
    raw = read_beside_session(KEY_PREFIX + sign_in_id) if 0 < len(sign_in_id) <= MAX_ID_LENGTH else None
    if raw is None:
        return None
    sign_in = SignInRequest.from_json(raw)
    browser = browser_binding(create=False)
    return (
        _speaking(sign_in) if browser is not None and hmac.compare_digest(browser, sign_in.browser) else None
    )


def _speaking(sign_in: SignInRequest) -> SignInRequest:
    """This request is a page of `sign_in`: it speaks the sign-in's language (idp.views.language)."""
    g.setdefault(LANGUAGE, sign_in.language)
    return sign_in


def language_of_this_sign_in() -> str | None:
    """The language of the sign-in this request loaded, if it has one."""
    language: str | None = g.get(LANGUAGE)
    return language


def change_language(page: str, language: str) -> None:
    """The sign-in (of this browser) whose page is at the path `page` speaks `language` from now on:
    the switcher's choice on a sign-in page outranks the client's ui_locales. The sign-in is taken and
    stored again, so that one another tab finished meanwhile is never brought back."""
    try:
        _endpoint, arguments = current_app.url_map.bind_to_environ(request.environ).match(urlsplit(page).path)
    except HTTPException:
        return
    sign_in = peek(str(arguments.get("sign_in_id", "")))
    current = services().ephemeral.take(KEY_PREFIX + sign_in.id) if sign_in is not None else None
    if current is not None:
        keep(replace(SignInRequest.from_json(current), language=language))


def keep(sign_in: SignInRequest) -> None:
    """Store a sign-in again under its id, as changed (its requirement after a password reset)."""
    found = services()
    found.ephemeral.put(
        KEY_PREFIX + sign_in.id, sign_in.to_json(), ttl=found.settings.tokens.sign_in_lifetime
    )


def finish(sign_in: SignInRequest) -> bool:
    """Spend the sign-in; False when another tab already finished it."""
    return services().ephemeral.take(KEY_PREFIX + sign_in.id) is not None


def decide(requirement: Requirement) -> tuple[Step, User | None]:
    """Ask the pipeline what this browser's session must do next to meet `requirement`."""
    user = signed_in_user()
    step = next_step(current_state(), load_account(user), requirement, services().policy, time.time())
    return step, user


def preview(requirement: Requirement) -> Step | None:
    """What the session must do next, judged on the account as its last proof found it (no database
    read): for a page that only shows what the step offers. None when the session cannot tell."""
    account = account_as_last_proven()
    if account is None:
        return None
    return next_step(current_state(), account, requirement, services().policy, time.time())
