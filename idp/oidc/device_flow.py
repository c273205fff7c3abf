"""The device authorization grant (RFC 8628): the device authorization endpoint, the user code a person
types at /device, the decision made there, and the device's polls at the token endpoint.

Everything lives in the ephemeral store, under the device code's digest (the code itself is never
stored) or the user code, each key for the code's lifetime and a grace after it (so that a late poll
hears expired_token rather than invalid_grant):

    device:<digest>            the request (client, scope, what it asks of the sign-in, user code, expiry)
    device-user-owned:<code>   reserves the user code: no two live requests share one
    device-user:<code>         the user code's request, until it is decided (taken: one decision only)
    device-decision:<digest>   approved (who, how they authenticated, the grant) or denied
    device-redeemed:<digest>   counts redemptions: only the first gets tokens
    device-slowed:<digest>     counts slow_downs
    device-poll:<digest>:<n>   polls within the current interval (n: the slow_downs so far)
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from authlib.common.urls import add_params_to_uri
from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as AuthlibDeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as AuthlibDeviceCodeGrant

from idp.auth.pipeline import RequestRejected, Requirement, requirement_for
from idp.auth.policy import AssurancePolicy
from idp.oidc.clients import CONFIDENTIAL_AUTH_METHODS, RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.tokens import Authentication, GrantSubject, digest

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), none that look alike (RFC 8628 6.1)
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5  # seconds added to the interval by each slow_down (RFC 8628 3.5)
VERIFICATION_PATH = "/device"
MAX_UNIQUE_TRIES = 5
INVALID_DEVICE_CODE = "The device code is invalid, expired or already used, or was issued to another client."


@dataclass(frozen=True)
class DeviceAuthorization:
    """A device's request (RFC 8628 3.1) as authlib's DeviceCredential sees it; `acr_values` and
    `max_age` are what the device asked of the sign-in (a step-up, RFC 9470), checked when issued."""

    device_key: str
    client_id: str
    scope: str
    requested_scope: str
    user_code: str
    acr_values: str | None
    max_age: str | None
    interval: int
    expires_at: int

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    @property
    def displayed_user_code(self) -> str:
        """Grouped for reading aloud and typing: WDJB-MJHT."""
        half = USER_CODE_LENGTH // 2
        return f"{self.user_code[:half]}-{self.user_code[half:]}"


@dataclass(frozen=True)
class Approval:
    """Who approved a device, how they authenticated at /device, and the grant its tokens belong to."""

    user_id: str
    authentication: dict[str, Any]
    grant_id: str


def normalized_user_code(typed: str) -> str | None:
    """The user code as stored: case-insensitive, full-width letters as the plain ones (NFKC), dashes
    and spaces ignored; None when it cannot be one."""
    typed = unicodedata.normalize("NFKC", typed)
    code = "".join(c for c in typed if not c.isspace() and unicodedata.category(c) != "Pd").upper()
    if len(code) != USER_CODE_LENGTH or any(letter not in USER_CODE_ALPHABET for letter in code):
        return None
    return code


def requirement_of(
    policy: AssurancePolicy, client: RegisteredClient, authorization: DeviceAuthorization, *, now: float
) -> Requirement:
    """What the sign-in at /device must prove for this request: its scopes' policy, its acr_values and
    max_age, the client's defaults (raises RequestRejected when they are unusable)."""
    return requirement_for(
        policy=policy,
        scopes=authorization.scope.split(),
        acr_values=authorization.acr_values,
        claims=None,
        max_age=authorization.max_age,
        prompt=None,
        client_default_acr_values=client.row.default_acr_values,
        client_default_max_age=client.row.default_max_age,
        now=now,
    )


# -- the store -----------------------------------------------------------------------------------


def _kept_for(context: ProviderContext) -> int:
    """Keys outlive the code by its lifetime again: a late poll then hears expired_token."""
    return 2 * context.device.code_lifetime


def pending_authorization(context: ProviderContext, user_code: str) -> DeviceAuthorization | None:
    """The undecided, unexpired request a user code names (already normalized), if any."""
    device_key = context.ephemeral.get(f"device-user:{user_code}")
    if device_key is None:
        return None
    found = _load(context, device_key.decode())
    return None if found is None or found.is_expired() else found


def decide(context: ProviderContext, authorization: DeviceAuthorization, approval: Approval | None) -> bool:
    """Approve (with `approval`) or deny the device; False when it was decided already or expired."""
    if authorization.is_expired() or context.ephemeral.take(f"device-user:{authorization.user_code}") is None:
        return False
    decision = {"approved": approval is not None, **(asdict(approval) if approval else {})}
    context.ephemeral.put(
        f"device-decision:{authorization.device_key}", json.dumps(decision).encode(), ttl=_kept_for(context)
    )
    return True


def _load(context: ProviderContext, device_key: str) -> DeviceAuthorization | None:
    raw = context.ephemeral.get(f"device:{device_key}")
    return None if raw is None else DeviceAuthorization(**json.loads(raw))


def _reserve_user_code(context: ProviderContext, generate: Callable[[], str]) -> str:
    """A user code no live request holds (incr is atomic: the first to count one owns it)."""
    for _ in range(MAX_UNIQUE_TRIES):
        code = normalized_user_code(generate())
        assert code is not None
        if context.ephemeral.incr(f"device-user-owned:{code}", ttl=_kept_for(context)) == 1:
            return code
    raise RuntimeError("no free user code: the user code space is exhausted")


# -- the device authorization endpoint (RFC 8628 3.1, 3.2) -----------------------------------------


class DeviceAuthorizationEndpoint(AuthlibDeviceAuthorizationEndpoint):
    """Clients authenticate as at the token endpoint (public clients name themselves); the client must
    be registered for the device grant; acr_values and max_age are checked here, asked at /device."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def authenticate_client(self, request: OAuth2Request) -> RegisteredClient:
        client: RegisteredClient = super().authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("The client may not use the device authorization grant.")
        return client

    def get_verification_uri(self) -> str:
        context: ProviderContext = self.server.context
        return context.issuer + VERIFICATION_PATH

    def create_endpoint_response(self, request: OAuth2Request) -> tuple[int, dict[str, Any], Any]:
        """authlib's steps, with the request's sign-in parameters kept and the codes stored hashed."""
        context: ProviderContext = self.server.context
        client = self.authenticate_client(request)
        self.server.validate_requested_scope(request.payload.scope)
        data = request.payload.data
        scope = client.get_allowed_scope(request.payload.scope)
        device_code = self.generate_device_code()
        authorization = DeviceAuthorization(
            device_key=digest(device_code),
            client_id=client.get_client_id(),
            scope=scope,
            requested_scope=request.payload.scope or "",
            user_code=_reserve_user_code(context, self.generate_user_code),
            acr_values=data.get("acr_values"),
            max_age=data.get("max_age"),
            interval=context.device.poll_interval,
            expires_at=int(time.time()) + context.device.code_lifetime,
        )
        try:
            requirement_of(context.policy, client, authorization, now=time.time())
        except RequestRejected as rejected:
            raise InvalidRequestError(rejected.description) from None
        kept = _kept_for(context)
        context.ephemeral.put(
            f"device:{authorization.device_key}", json.dumps(asdict(authorization)).encode(), ttl=kept
        )
        context.ephemeral.put(
            f"device-user:{authorization.user_code}",
            authorization.device_key.encode(),
            ttl=context.device.code_lifetime,
        )
        verification_uri = self.get_verification_uri()
        shown = authorization.displayed_user_code
        answer = {
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": verification_uri,
            "verification_uri_complete": add_params_to_uri(verification_uri, [("user_code", shown)]),
            "expires_in": context.device.code_lifetime,
            "interval": authorization.interval,
        }
        context.audit("device_authorization", "success", client_id=client.get_client_id())
        return 200, answer, default_json_headers


# -- the token endpoint's device grant (RFC 8628 3.4, 3.5) -----------------------------------------


class DeviceCodeGrant(AuthlibDeviceCodeGrant):
    """Polls answer authorization_pending, slow_down, access_denied or expired_token until the user
    decides; an approved device code gets tokens once (a second redemption is invalid_grant)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def authenticate_token_endpoint_client(self) -> RegisteredClient:
        """Known before the device code is looked up: a code is only ever found for its own client."""
        client: RegisteredClient = super().authenticate_token_endpoint_client()
        self.request.client = client
        return client

    def query_device_credential(self, device_code: str) -> DeviceAuthorization:
        """The request of this client's device code; kept on the request for the steps that follow."""
        found = _load(self.server.context, digest(device_code))
        if found is None or found.client_id != self.request.client.get_client_id():
            raise InvalidGrantError(INVALID_DEVICE_CODE)
        self.request.credential = found
        return found

    def query_user_grant(self, _user_code: str) -> tuple[GrantSubject | None, bool] | None:
        """The decision, if made; an approval redeems the code, which only the first poll can do."""
        context: ProviderContext = self.server.context
        device_key = self.request.credential.device_key
        raw = context.ephemeral.get(f"device-decision:{device_key}")
        if raw is None:
            return None
        decision = json.loads(raw)
        if not decision.pop("approved"):
            return None, False
        approval = Approval(**decision)
        user = context.durable().users.get(approval.user_id)  # before spending: an outage keeps the code
        if user is None or user.disabled:
            raise InvalidGrantError("The account the device was approved for cannot sign in.")
        if context.ephemeral.incr(f"device-redeemed:{device_key}", ttl=_kept_for(context)) != 1:
            raise InvalidGrantError(INVALID_DEVICE_CODE)
        authentication = Authentication.from_json(approval.authentication)
        return GrantSubject(user=user, authentication=authentication, grant_id=approval.grant_id), True

    def should_slow_down(self, credential: DeviceAuthorization) -> bool:
        """A poll within the interval of the previous one: the interval grows by 5 s from now on."""
        ephemeral = self.server.context.ephemeral
        kept = _kept_for(self.server.context)
        device_key = credential.device_key
        slowed = int(ephemeral.get(f"device-slowed:{device_key}") or 0)
        interval = credential.interval + SLOW_DOWN_STEP * slowed
        if ephemeral.incr(f"device-poll:{device_key}:{slowed}", ttl=interval) == 1:
            return False
        slowed = ephemeral.incr(f"device-slowed:{device_key}", ttl=kept)
        # The longer wait starts now: this poll counts as the first of the new interval.
        ephemeral.incr(f"device-poll:{device_key}:{slowed}", ttl=interval + SLOW_DOWN_STEP)
        return True
