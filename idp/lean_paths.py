"""WSGI middleware: the hottest machine-to-machine requests answered ahead of Flask.

A client-credentials or refresh token request and an introspection, each authenticated with HTTP
Basic and carrying no DPoP proof, are answered here when they are plainly well formed and will
succeed: the client is in the client cache, its secret is right for the endpoint (the same
`RegisteredClient` checks), its throttle gate is open (the same `Throttle`: a secret known to be
right is not counted, only its gate read), the token comes from the same `TokenService`; a refresh
rotates a plainly usable token in one statement (`rotate_refresh_token`), and introspection builds
the same `TokenIntrospection` answer: from the access token's record (`TokenService.recorded_claims`,
read in the round trip that reads the gate), else by the same `find_token` as the Flask endpoint.
Everything else, every refusal and every store failure, is handed to Flask untouched, so each
error, audit event, 429 and 503 has one author. Successes are audited on neither path.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from idp import observability
from idp.auth.throttle import Throttle
from idp.oidc.clients import RegisteredClient
from idp.oidc.keys import MAX_JWT_LENGTH
from idp.oidc.server import ProviderServer
from idp.oidc.token_endpoints import TokenIntrospection
from idp.oidc.token_lookup import IssuedToken, access_token_view, find_token
from idp.oidc.tokens import UNDECIDED, Authentication, Holder, digest, new_refresh_token
from idp.security_headers import security_headers
from idp.store.database import Database
from idp.store.durable import DurableStore, rotate_refresh_token
from idp.store.failures import STORE_FAILURES

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FORM = "application/x-www-form-urlencoded"
BASIC = "client_secret_basic"
GRANT_TYPE = "client_credentials"
REFRESH = "refresh_token"


class Declined(Exception):
    """Not a request this path answers: Flask will."""


@dataclass(frozen=True)
class BasicRequest:
    """A POST of a small form with HTTP Basic client credentials and nothing else to read."""

    form: dict[str, str]
    client_id: str
    secret: str
    address: str | None


@dataclass(frozen=True)
class Route:
    """One path answered here: its answer, the form parameters it reads (any other: Flask's), and the
    Flask endpoint it stands in for (the name its latency is recorded under)."""

    answer: Callable[[BasicRequest], dict[str, Any]]
    form_names: frozenset[str]
    endpoint: str


class LeanPaths:
    """Ahead of Flask (inside `TrustedProxies`, so REMOTE_ADDR is the client's): see the module."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        server: ProviderServer,
        throttle: Throttle,
        database: Database,
        hsts: bool,
        max_body: int,
        dumps: Callable[[Any], str],
    ) -> None:
        self.behind = app  # Flask, and the documents published ahead of it: whatever is declined here
        self._context = server.context
        self._throttle = throttle
        self._database = database
        self._introspection = TokenIntrospection(server)
        self._max_body = max_body
        self._dumps = dumps  # the Flask app's JSON, so both paths write the same bytes
        self._headers = [*default_json_headers, *security_headers(mimetype="application/json", hsts=hsts)]
        self._issued = {grant: observability.TOKENS.labels(grant, "200") for grant in (GRANT_TYPE, REFRESH)}
        self._routes = {
            "/token": Route(self._token, frozenset({"grant_type", "scope", "refresh_token"}), "oidc.token"),
            "/introspect": Route(
                self._introspect, frozenset({"token", "token_type_hint"}), "oidc.introspect"
            ),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = self._routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return self.behind(environ, start_response)
        started = time.perf_counter()
        try:
            body = route.answer(self._read(environ, allowed=route.form_names))
        except (Declined, *STORE_FAILURES):  # a store failing: Flask fails the request closed
            return self.behind(environ, start_response)
        payload = self._dumps(body).encode()
        headers = [
            *self._headers,
            ("Content-Length", str(len(payload))),
            ("X-Request-ID", observability.request_id(environ.get("HTTP_X_REQUEST_ID", ""))),
        ]
        start_response("200 OK", headers)
        observability.observe_latency(route.endpoint, started=started)
        return [payload]

    # -- the answers ----------------------------------------------------------------------------------

    def _token(self, request: BasicRequest) -> dict[str, Any]:
        grant_type = request.form.get("grant_type")
        if grant_type == GRANT_TYPE and "refresh_token" not in request.form:
            return self._client_credentials(request)
        if grant_type == REFRESH and "refresh_token" in request.form and "scope" not in request.form:
            return self._refresh(request)
        raise Declined

    def _client_credentials(self, request: BasicRequest) -> dict[str, Any]:
        """RFC 6749 4.4, as `ClientCredentialsGrant` answers a client allowed what it asks. The token is
        signed first, so that its record is stored in the step that reads the client's gate: unless
        the gate holds (then Flask answers, the token is never handed out and nothing is recorded)."""
        scope = request.form.get("scope")
        client = self._authenticated(request, endpoint="token")
        if (
            not client.check_grant_type(GRANT_TYPE)
            or not client.registered_every_scope(scope)
            or client.requires_dpop  # refused without a proof, by Flask; with one, bound there
        ):
            raise Declined
        tokens = self._context.tokens
        issued = tokens.issue(client=client, scope=scope)
        if not tokens.record(issued, unless_any=self._hold_keys(request)):
            raise Declined
        self._issued[GRANT_TYPE].inc()
        return issued.response

    def _refresh(self, request: BasicRequest) -> dict[str, Any]:
        """RFC 6749 6, as `RefreshTokenGrant` answers a confidential client whose refresh token is plainly
        usable, asking for the grant's whole scope: the token rotated (RFC 9700 4.14.2) and its successor
        added at once (`rotate_refresh_token`: one statement on PostgreSQL, a transaction shared with
        concurrent rotations on SQLite), then the same token service signs. Any other
        token (unknown, replayed, revoked, expired, another client's, bound to a DPoP key, of a disabled
        account or an ended session) is left to Flask untouched: a replay revokes its grant there."""
        client = self._authenticated(request, endpoint="token")
        if not client.check_grant_type(REFRESH) or client.requires_dpop:
            raise Declined
        self._gate_open(self._context.ephemeral.get_many(self._hold_keys(request)))
        successor, now = new_refresh_token(), int(time.time())
        rotated = rotate_refresh_token(
            self._database,
            digest(request.form["refresh_token"]),
            client_id=client.get_client_id(),
            successor_hash=digest(successor),
            now=now,
            lifetime=self._context.lifetimes.refresh_token_lifetime,
        )
        if rotated is None:
            raise Declined
        holder = Holder(rotated.user_id, Authentication.from_json(rotated.authentication), rotated.family_id)
        tokens = self._context.tokens
        issued = tokens.issue(client=client, holder=holder, scope=rotated.scope, refresh_token=successor)
        # The old token is spent: from here on the answer is this one (Flask would take the request
        # for a replay). A record not stored only means the token is verified when introspected.
        with contextlib.suppress(*STORE_FAILURES):
            tokens.record(issued)
        self._issued[REFRESH].inc()
        return issued.response

    def _introspect(self, request: BasicRequest) -> dict[str, Any]:
        """RFC 7662, as `TokenIntrospection` answers an authenticated client: from the access token's
        record, read with the client's gate and the token's revocation markers in one round trip; else
        (no record, a refresh token, an account whose state changed) as the Flask endpoint looks it up,
        on a reading session."""
        hint = request.form.get("token_type_hint")
        if "token" not in request.form or (hint and hint not in TokenIntrospection.SUPPORTED_TOKEN_TYPES):
            raise Declined
        client = self._authenticated(request, endpoint=TokenIntrospection.ENDPOINT_NAME)
        holds = self._hold_keys(request)
        query = self._context.tokens.record_query(request.form["token"])
        values = self._context.ephemeral.get_many([*holds, *(query.keys if query else [])])
        self._gate_open(values[: len(holds)])
        recorded = (
            UNDECIDED if query is None else self._context.tokens.recorded_claims(query, values[len(holds) :])
        )
        if recorded is not UNDECIDED:
            return self._introspection_payload(
                None if recorded is None else access_token_view(recorded), client
            )
        with self._reading() as durable:
            token = find_token(replace(self._context, durable=durable), request.form["token"])
            return self._introspection_payload(token, client)

    def _introspection_payload(self, token: IssuedToken | None, client: RegisteredClient) -> dict[str, Any]:
        permitted = token is not None and self._introspection.check_permission(token, client, None)
        payload: dict[str, Any] = self._introspection.create_introspection_payload(
            token if permitted else None
        )
        return payload

    # -- what both share -----------------------------------------------------------------------------

    def _read(self, environ: dict[str, Any], *, allowed: frozenset[str]) -> BasicRequest:
        """The form and the Basic credentials, only when nothing about them needs Flask's judgement
        (which then reads the same body: it is put back)."""
        length = environ.get("CONTENT_LENGTH", "")
        if (
            environ.get("CONTENT_TYPE") != FORM
            or environ.get("QUERY_STRING")
            or environ.get("HTTP_TRANSFER_ENCODING")
            or "HTTP_DPOP" in environ  # a DPoP proof (RFC 9449) binds the token: Flask's grants check it
            or not length.isdigit()
            or not 0 < int(length) <= self._max_body
        ):
            raise Declined
        raw = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            pairs = parse_qsl(
                raw.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
            client_id, secret = extract_basic_authorization(
                {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
            )
        except (UnicodeDecodeError, ValueError):
            raise Declined from None
        form = dict(pairs)
        too_long = any(len(value) > MAX_JWT_LENGTH for value in form.values())
        if len(form) != len(pairs) or not form.keys() <= allowed or too_long:
            raise Declined
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization[:6].lower() == "basic " or not client_id or not secret:
            raise Declined
        return BasicRequest(form, client_id, secret, environ.get("REMOTE_ADDR"))

    def _authenticated(self, request: BasicRequest, *, endpoint: str) -> RegisteredClient:
        """The client, when it is cached here and its secret is right for that endpoint."""
        client = self._context.clients.peek(request.client_id)
        right = client is not None and client.authenticates_with_secret(
            request.secret, method=BASIC, endpoint=endpoint
        )
        if client is None or not right:
            raise Declined
        return client

    def _hold_keys(self, request: BasicRequest) -> list[str]:
        """What says whether the client's gate holds (read as `reserve` would read it): a right
        secret, so nothing to count."""
        return self._throttle.hold_keys(
            self._throttle.client_authentication(request.client_id, request.address)
        )

    @staticmethod
    def _gate_open(holds: Sequence[bytes | None]) -> None:
        """A gate that holds leaves the request to Flask, which answers the 429 and audits it."""
        if any(hold is not None for hold in holds):
            raise Declined

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Callable[[], DurableStore]]:
        """The durable store, opened on first use and closed at the end, for reading only: an
        introspection reads one row (the account, or a refresh token with its account), so no
        transaction is opened around it."""
        opened: list[DurableStore] = []
        sessions = []

        def durable() -> DurableStore:
            if not opened:
                session = self._database.open_reading_session()
                sessions.append(session)
                opened.append(DurableStore.over(session))
            return opened[0]

        try:
            yield durable
        finally:
            for session in sessions:
                session.close()
