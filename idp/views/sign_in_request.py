"""The sign-in in progress: where it ends (a client or one of our pages), what it requires, and which
browser it belongs to; stored, loaded, decided and finished here."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import Request, request

from idp.auth.pipeline import Requirement, Step, next_step, requirement_from_json, requirement_to_json
from idp.auth.quotas import Usage
from idp.store.tables import User
from idp.views.session_state import (
    browser_binding,
    current_state,
    load_account,
    read_beside_session,
    signed_in_user,
)
from idp.web import audit, services

KEY_PREFIX = "authz:"
MAX_ID_LENGTH = 64


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
    client_name: str = "Your account"


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
    """A sign-in waiting for enough proof; `browser` binds it to the browser that started it."""

    id: str
    destination: Destination
    requirement: Requirement
    browser: str

    @property
    def client_name(self) -> str:
        return self.destination.client_name

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


def start(destination: Destination, requirement: Requirement) -> SignInRequest:
    """Store a new sign-in for this browser, for the configured sign-in lifetime; raises
    TooManySignIns once this address has started its quota of them (nothing is stored then)."""
    found = services()
    quota = found.quotas.sign_ins
    if found.quotas.use(quota, address=request.remote_addr) is not Usage.WITHIN:
        raise TooManySignIns(retry_after=quota.window)
    browser = browser_binding(create=True)
    assert browser is not None
    sign_in = SignInRequest(
        id=secrets.token_urlsafe(24), destination=destination, requirement=requirement, browser=browser
    )
    found.ephemeral.put(
        KEY_PREFIX + sign_in.id, sign_in.to_json(), ttl=found.settings.tokens.sign_in_lifetime
    )
    return sign_in


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
    return sign_in


def peek(sign_in_id: str) -> SignInRequest | None:
    """The sign-in in progress when this browser started it; unlike `load`, nothing is spent (a
    password reset link opened in another browser leaves the sign-in it was asked from alone)."""
    raw = read_beside_session(KEY_PREFIX + sign_in_id) if 0 < len(sign_in_id) <= MAX_ID_LENGTH else None
    if raw is None:
        return None
    sign_in = SignInRequest.from_json(raw)
    browser = browser_binding(create=False)
    return sign_in if browser is not None and hmac.compare_digest(browser, sign_in.browser) else None


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
