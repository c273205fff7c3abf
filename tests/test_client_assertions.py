"""private_key_jwt (RFC 7523 2.2, OIDC Core 9) end to end: Authlib's own client authenticates with a key
it registered through the CLI, at the token, introspection and revocation endpoints of a live provider on
PostgreSQL and Redis. Then the attacker's moves: an assertion replayed (also raced), for another audience,
expired, unsigned, signed by a key the client never registered; and a jwks_uri served over HTTP.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from support.client_jwts import ClientKey, assertion_claims, assertion_form, unsigned
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    TIMEOUT,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    location,
    register_client,
)

MFA_AMR = {"pwd", "otp", "mfa"}
SLOWER_THAN_THE_TIMEOUT = 10  # seconds; [client_keys] fetch_timeout is 3
# The attacks below fail on purpose, many times: keep the back-off of client authentication out of the way.
LENIENT_THROTTLE = "[throttle.client_auth]\nfree_attempts = 1000\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    directory = tmp_path_factory.mktemp("pkjwt")
    with provider_on_real_stores(directory, database_prefix="idp_pkjwt_", extra=LENIENT_THROTTLE) as provider:
        yield provider


@dataclass(frozen=True)
class KeyedClient:
    """A client registered with --token-endpoint-auth-method private_key_jwt and its key's JWKS."""

    client: Client
    key: ClientKey

    def session(self, *, audience: str) -> OAuth2Session:
        """Authlib's client, signing each request's assertion for `audience`."""
        session = OAuth2Session(
            self.client.client_id,
            self.key.private,
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
            redirect_uri=self.client.redirect_uri,
            scope="openid profile offline_access",
            code_challenge_method="S256",
        )
        session.register_client_auth_method(PrivateKeyJWT(audience, alg=self.key.alg))
        return session


def register_keyed(live: LiveProvider, name: str, directory: Path, *options: str, alg: str) -> KeyedClient:
    key = ClientKey.generate(alg)
    client = register_client(
        live,
        name,
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(key.write_jwks(directory, f"{name}.json")),
        "--scope",
        "openid",
        "--scope",
        "profile",
        *options,
    )
    assert client.secret is None, "private_key_jwt mints no secret"
    return KeyedClient(client, key)


@pytest.fixture(scope="module")
def signer(live: LiveProvider, tmp_path_factory: pytest.TempPathFactory) -> KeyedClient:
    grants = (
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "offline_access",
    )
    return register_keyed(live, "signer", tmp_path_factory.mktemp("keys"), *grants, alg="RS256")


@pytest.fixture(scope="module")
def machine(live: LiveProvider, tmp_path_factory: pytest.TempPathFactory) -> KeyedClient:
    """A client_credentials client signing with ES256: every attack below is tried on its token requests."""
    directory = tmp_path_factory.mktemp("keys")
    return register_keyed(live, "machine", directory, "--grant-type", "client_credentials", alg="ES256")


def client_credentials(op: OpenIdProvider, assertion: str) -> requests.Response:
    form = {"grant_type": "client_credentials", **assertion_form(assertion)}
    return requests.post(op.endpoint("token"), data=form, timeout=TIMEOUT)


def refused(response: requests.Response) -> str:
    assert response.status_code in (400, 401), response.text
    return str(response.json()["error"])


# -- the relying party's way ------------------------------------------------------------------------------


def test_discovery_advertises_private_key_jwt_with_the_algorithms_it_verifies(op: OpenIdProvider) -> None:
    for endpoint in ("token", "introspection", "revocation"):
        assert "private_key_jwt" in op.metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        algorithms = op.metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert set(algorithms) == {"RS256", "PS256", "ES256"}, "asymmetric only: never none, never HS256"


def test_authlib_signs_a_user_in_refreshes_introspects_and_revokes_with_private_key_jwt(
    live: LiveProvider, op: OpenIdProvider, signer: KeyedClient
) -> None:
    session = signer.session(audience=op.endpoint("token"))
    verifier, nonce = generate_token(48), generate_token(16)
    url, state = session.create_authorization_url(
        op.metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    browser = Browser(op)
    leaving = browser.pass_sign_in(browser.visit(url), create_account(live, "pkjwt"))

    tokens = session.fetch_token(
        op.endpoint("token"), authorization_response=location(leaving), code_verifier=verifier, state=state
    )

    claims = op.verify_id_token(
        tokens["id_token"], expected_audience=signer.client.client_id, expected_nonce=nonce
    )
    assert set(claims["amr"]) == MFA_AMR
    by_issuer = signer.session(audience=op.issuer)  # the issuer is an audience too (RFC 7523 3)
    introspected = by_issuer.introspect_token(op.endpoint("introspection"), token=tokens["access_token"])
    assert introspected.json()["active"] is True
    assert introspected.json()["client_id"] == signer.client.client_id
    refreshed = session.refresh_token(op.endpoint("token"), refresh_token=tokens["refresh_token"])
    assert refreshed["access_token"] != tokens["access_token"]
    revoked = session.revoke_token(
        op.endpoint("revocation"), token=refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    again = by_issuer.introspect_token(op.endpoint("introspection"), token=refreshed["refresh_token"])
    assert again.json() == {"active": False}


@pytest.mark.parametrize("audience", ["issuer", "token endpoint"])
def test_an_assertion_for_the_issuer_or_the_token_endpoint_authenticates(
    op: OpenIdProvider, machine: KeyedClient, audience: str
) -> None:
    aud = op.issuer if audience == "issuer" else op.endpoint("token")
    assertion = machine.key.sign(assertion_claims(client_id=machine.client.client_id, audience=aud))

    response = client_credentials(op, assertion)

    assert response.status_code == 200, response.text
    assert response.json()["token_type"].lower() == "bearer"


# -- the attacker's moves ----------------------------------------------------------------------------------

Forgery = Callable[[KeyedClient, OpenIdProvider], str]


def _signed(**changes: Any) -> Forgery:
    """An assertion by the client's own key, with claims changed (None: left out)."""

    def make(machine: KeyedClient, op: OpenIdProvider) -> str:
        claims = assertion_claims(client_id=machine.client.client_id, audience=op.issuer) | changes
        return machine.key.sign({name: value for name, value in claims.items() if value is not None})

    return make


def _expired(machine: KeyedClient, op: OpenIdProvider) -> str:
    return machine.key.sign(
        assertion_claims(client_id=machine.client.client_id, audience=op.issuer, lifetime=-120)
    )


def _valid_for_two_hours(machine: KeyedClient, op: OpenIdProvider) -> str:
    return machine.key.sign(
        assertion_claims(client_id=machine.client.client_id, audience=op.issuer, lifetime=7200)
    )


def _unsigned(machine: KeyedClient, op: OpenIdProvider) -> str:
    return unsigned(assertion_claims(client_id=machine.client.client_id, audience=op.issuer))


def _another_key(machine: KeyedClient, op: OpenIdProvider) -> str:
    return ClientKey.generate("ES256").sign(
        assertion_claims(client_id=machine.client.client_id, audience=op.issuer)
    )


def _crit_not_a_list(machine: KeyedClient, op: OpenIdProvider) -> str:
    """A header joserfc cannot parse (it raises TypeError, not its own error): refused, never a 500."""
    claims = assertion_claims(client_id=machine.client.client_id, audience=op.issuer)
    header = {"alg": "ES256", "crit": 5}
    return ".".join([b64url(json_bytes(header)), b64url(json_bytes(claims)), "AAAA"])


FORGERIES = [
    pytest.param(_signed(aud="https://rp.example/token"), id="fails because the audience is another server"),
    pytest.param(
        lambda machine, op: _signed(aud=op.endpoint("introspection"))(machine, op),
        id="fails because the audience is the introspection endpoint, not the issuer or token endpoint",
    ),
    pytest.param(_expired, id="fails because it expired two minutes ago (beyond the leeway)"),
    pytest.param(_valid_for_two_hours, id="fails because it is valid for longer than its jti is remembered"),
    pytest.param(_unsigned, id="fails because it is unsigned (alg none)"),
    pytest.param(_another_key, id="fails because a key the client never registered signed it"),
    pytest.param(_signed(jti=None), id="fails because it has no jti, so a replay could not be told"),
    pytest.param(_signed(iss="someone-else"), id="fails because iss is not the client"),
    pytest.param(_signed(exp=None), id="fails because it has no exp"),
    pytest.param(_crit_not_a_list, id="fails because its crit header is not a list"),
]


@pytest.mark.parametrize("forge", FORGERIES)
def test_a_forged_client_assertion_is_refused_with_invalid_client(
    op: OpenIdProvider, machine: KeyedClient, forge: Forgery
) -> None:
    assert refused(client_credentials(op, forge(machine, op))) == "invalid_client"


def test_a_replayed_client_assertion_is_refused(op: OpenIdProvider, machine: KeyedClient) -> None:
    assertion = machine.key.sign(assertion_claims(client_id=machine.client.client_id, audience=op.issuer))
    assert client_credentials(op, assertion).status_code == 200

    replayed = client_credentials(op, assertion)

    assert refused(replayed) == "invalid_client"


def test_an_assertion_sent_eight_times_at_once_authenticates_exactly_once(
    op: OpenIdProvider, machine: KeyedClient
) -> None:
    assertion = machine.key.sign(assertion_claims(client_id=machine.client.client_id, audience=op.issuer))

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: client_credentials(op, assertion), range(8)))

    assert sorted(response.status_code for response in responses)[0] == 200
    assert [response.status_code for response in responses].count(200) == 1
    assert all(refused(response) == "invalid_client" for response in responses if response.status_code != 200)


def test_a_client_with_a_secret_cannot_authenticate_with_an_assertion(
    live: LiveProvider, op: OpenIdProvider, machine: KeyedClient
) -> None:
    """Only the registered method counts: an assertion naming a secret client (no keys) is refused."""
    secret_client = register_client(
        live, "secret-machine", "--grant-type", "client_credentials", redirect=False
    )
    assertion = machine.key.sign(assertion_claims(client_id=secret_client.client_id, audience=op.issuer))

    assert refused(client_credentials(op, assertion)) == "invalid_client"


# -- keys at a jwks_uri ------------------------------------------------------------------------------------


@dataclass
class KeyServer:
    """A client's own web server publishing documents on loopback, and the paths it was asked for."""

    documents: dict[str, bytes]
    origin: str = ""
    asked: list[str] = field(default_factory=list)


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    served = KeyServer({})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.asked.append(self.path)
            if self.path == "/slow.json":
                time.sleep(SLOWER_THAN_THE_TIMEOUT)
            body = served.documents.get(self.path)
            try:
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body or b"")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the provider hung up: it stopped waiting at its timeout

        def log_message(self, *_args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    thread.join()


def test_keys_published_at_a_jwks_uri_are_fetched_once_and_cached(
    live: LiveProvider, op: OpenIdProvider, key_server: KeyServer
) -> None:
    key = ClientKey.generate("PS256")
    key_server.documents["/jwks.json"] = json_bytes(key.jwks())
    client = register_client(
        live,
        "published",
        "--grant-type",
        "client_credentials",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        f"{key_server.origin}/jwks.json",
        redirect=False,
    )

    for _ in range(2):
        assertion = key.sign(assertion_claims(client_id=client.client_id, audience=op.endpoint("token")))
        response = client_credentials(op, assertion)
        assert response.status_code == 200, response.text

    # Each of the provider's two workers may fetch it once; neither fetches it again within the cache time.
    assert 1 <= key_server.asked.count("/jwks.json") <= 2


def test_a_jwks_uri_document_over_the_size_cap_authenticates_no_one(
    live: LiveProvider, op: OpenIdProvider, key_server: KeyServer
) -> None:
    key = ClientKey.generate("RS256")
    padded = key.jwks() | {"padding": "x" * 70_000}  # over the default 64 KiB cap
    key_server.documents["/big.json"] = json_bytes(padded)
    client = register_client(
        live,
        "oversized",
        "--grant-type",
        "client_credentials",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        f"{key_server.origin}/big.json",
        redirect=False,
    )
    assertion = key.sign(assertion_claims(client_id=client.client_id, audience=op.issuer))

    assert refused(client_credentials(op, assertion)) == "invalid_client"
    assert key_server.asked == ["/big.json"]


def json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_jwks_uri_that_does_not_answer_in_time_authenticates_no_one(
    live: LiveProvider, op: OpenIdProvider, key_server: KeyServer
) -> None:
    key = ClientKey.generate("RS256")
    key_server.documents["/slow.json"] = json_bytes(key.jwks())
    client = register_client(
        live,
        "slow",
        "--grant-type",
        "client_credentials",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        f"{key_server.origin}/slow.json",
        redirect=False,
    )
    assertion = key.sign(assertion_claims(client_id=client.client_id, audience=op.issuer))
    started = time.monotonic()

    response = client_credentials(op, assertion)

    assert refused(response) == "invalid_client"
    assert time.monotonic() - started < SLOWER_THAN_THE_TIMEOUT - 2, "the provider gave up at its timeout"
