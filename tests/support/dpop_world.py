"""A live provider as DPoP clients see it: its clients, a signed-in browser, and openid-client (node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from support.dpop import DpopKey, thumbprint
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    TIMEOUT,
    Account,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    location,
    register_client,
)

# The attacks fail on purpose, many times: keep the back-off of client authentication out of the way.
LENIENT_THROTTLE = "[throttle.client_auth]\nfree_attempts = 1000\n"
NODE_TESTS = Path(__file__).parents[1] / "node"


@dataclass
class World:
    live: LiveProvider
    op: OpenIdProvider
    browser: Browser  # alice's, signed in: each authorization request comes straight back with a code
    account: Account
    public: Client  # a native app
    strict: Client  # a native app registered with --require-dpop
    web: Client  # a confidential web app
    machine: Client  # client credentials
    api: Client  # a resource server for the apps' tokens

    def code(self, client: Client, **params: str) -> dict[str, str]:
        """The token request form that redeems a fresh authorization code for `client` (authorization
        request `params` added)."""
        attempt = self.browser.authorize(client, **params)
        params = attempt.callback(attempt.page)
        assert attempt.pkce is not None
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": client.redirect_uri,
            "code_verifier": attempt.pkce.verifier,
        }
        return form

    @property
    def token_url(self) -> str:
        return self.op.endpoint("token")

    @property
    def userinfo_url(self) -> str:
        return self.op.endpoint("userinfo")

    def token(self, client: Client, form: dict[str, str], *, proof: str | None) -> requests.Response:
        headers = {} if proof is None else {"DPoP": proof}
        return requests.post(self.token_url, headers=headers, timeout=TIMEOUT, **client.authenticated(form))

    def bound_tokens(self, client: Client, key: DpopKey) -> dict[str, Any]:
        form = self.code(client)
        response = self.token(client, form, proof=key.proof("POST", self.token_url))
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def userinfo(self, scheme: str, access_token: str, *, proof: str | None = None) -> requests.Response:
        headers = {"Authorization": f"{scheme} {access_token}"} | ({} if proof is None else {"DPoP": proof})
        return requests.get(self.userinfo_url, headers=headers, timeout=TIMEOUT)

    def machine_token(self, proof: str | None) -> requests.Response:
        return self.token(self.machine, {"grant_type": "client_credentials"}, proof=proof)


@contextmanager
def dpop_world(directory: Path, *, database_prefix: str, extra: str = "") -> Iterator[World]:
    """A provider on PostgreSQL and Redis with the clients DPoP tests use, and alice signed in."""
    with provider_on_real_stores(
        directory, database_prefix=database_prefix, extra=LENIENT_THROTTLE + extra
    ) as live:
        with ThreadPoolExecutor(max_workers=5) as pool:
            public = pool.submit(register_client, live, "native", "--public")
            strict = pool.submit(register_client, live, "strict", "--public", "--require-dpop")
            web = pool.submit(register_client, live, "web")
            machine = pool.submit(
                register_client, live, "machine", "--grant-type", "client_credentials", redirect=False
            )
            account = pool.submit(create_account, live, "alice")
            apps = [public.result(), strict.result(), web.result()]
        audiences = [option for app in apps for option in ("--introspect", app.client_id)]
        api = register_client(live, "api", "--grant-type", "client_credentials", *audiences, redirect=False)
        op = OpenIdProvider(live.issuer)
        browser = Browser(op)
        browser.sign_in(apps[0], account.result())
        yield World(live, op, browser, account.result(), *apps, machine.result(), api)


def error_of(response: requests.Response) -> str:
    body = response.json()
    assert isinstance(body.get("error_description"), str) and body["error_description"].endswith("."), body
    return str(body["error"])


def challenge_error(response: requests.Response) -> str:
    """The error of a 401 with a DPoP challenge (RFC 9449 7.1)."""
    assert response.status_code == 401, response.text
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("DPoP error="), header
    assert 'algs="' in header
    return header.split('"')[1]


def run_openid_client(world: World) -> dict[str, Any]:
    """tests/node/dpop_flow.mjs for the world's public client; the signed-in browser approves."""
    node = shutil.which("node")
    assert node is not None, "node is missing: scripts/prepare-test-machine installs it"
    assert (NODE_TESTS / "node_modules" / "openid-client").is_dir(), "run scripts/prepare-test-machine"
    client = world.public
    command = [
        node,
        str(NODE_TESTS / "dpop_flow.mjs"),
        world.op.issuer,
        client.client_id,
        client.redirect_uri,
    ]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, process.communicate(timeout=30)[1]
        page = world.browser.visit(json.loads(first)["authorization_url"])
        callback = location(page)
        assert callback is not None and callback.startswith(client.redirect_uri + "?"), (page.url, page.text)
        output, errors = process.communicate(callback + "\n", timeout=60)
    assert process.returncode == 0, errors
    result: dict[str, Any] = json.loads(output)
    return result


def assert_openid_client_flow(world: World, *, demands_nonces: bool) -> None:
    """openid-client got DPoP-bound tokens for its own key, refreshed and called userinfo; the refresh
    token it holds is useless with another key."""
    result = run_openid_client(world)
    assert result["token_type"].lower() == result["refreshed_token_type"].lower() == "dpop"
    assert result["userinfo"]["sub"] == result["subject"]
    claims = world.op.verify_access_token(result["access_token"], expected_audience=world.public.client_id)
    assert claims["cnf"] == {"jkt": thumbprint(result["public_key"])}
    form = {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    thief = DpopKey.generate()
    stolen = world.token(world.public, form, proof=thief.proof("POST", world.token_url))
    if demands_nonces:
        assert error_of(stolen) == "use_dpop_nonce"
        nonce = stolen.headers["DPoP-Nonce"]
        stolen = world.token(world.public, form, proof=thief.proof("POST", world.token_url, nonce=nonce))
    assert stolen.status_code == 400 and error_of(stolen) == "invalid_dpop_proof", stolen.text
