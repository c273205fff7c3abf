"""schemathesis fuzzes the live admin API (PostgreSQL, Redis, the production server) with a valid
administrator's token: no 5xx, and every answer conforms to the OpenAPI document."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from support.live import LiveProvider, provider_on_real_stores

from idp.admin.operations import OPERATIONS
from idp.config import load_settings
from idp.oidc.clients import RegisteredClient
from idp.oidc.keys import KeyRing
from idp.oidc.tokens import Authentication, GrantSubject, TokenService, new_grant_id
from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.ephemeral import open_ephemeral_store

PASSWORD = "a long enough password\n"
# No 5xx, and every answer as documented. Not "a schema-valid request is accepted": the password
# policy and the client registration rules refuse some of those, with a documented 400 problem.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


class AdminTokens:
    """Tokens the live provider issued to its administrator after a fresh attested-key sign-in
    (minted with the provider's own keys, as its token endpoint would)."""

    def __init__(self, provider: LiveProvider) -> None:
        created = provider.idp("users", "create", "root", "--admin", "--password-stdin", stdin=PASSWORD)
        assert created.returncode == 0, created.stderr
        registered = provider.idp(
            "clients", "create", "--name", "Admin tool", "--redirect-uri", "https://admin.example.com/cb",
            "--scope", "openid", "--scope", "admin", "--json",
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        found = load_settings(provider.config)
        with Database(found.database_url).unit_of_work() as session:
            store = DurableStore.over(session)
            self._root = store.users.by_username("root")
            self._client = RegisteredClient(store.clients.get(json.loads(registered.stdout)["client_id"]))  # type: ignore[arg-type]
            session.expunge_all()
        self._tokens = TokenService(
            issuer=found.issuer,
            keyring=KeyRing.load(Path(found.keys.directory)),
            algorithm=found.keys.algorithm,
            ephemeral=open_ephemeral_store(found.redis.url, Path(found.instance_dir)),
            access_token_lifetime=found.tokens.access_token_lifetime,
        )

    def fresh(self) -> str:
        assert self._root is not None
        authentication = Authentication(
            acr="phrh", amr=("pwd", "hwk", "user", "mfa"), auth_time=int(time.time()), sid="fuzz"
        )
        subject = GrantSubject(user=self._root, authentication=authentication, grant_id=new_grant_id())
        issued = self._tokens.generate(
            grant_type="authorization_code", client=self._client, user=subject, scope="openid admin"
        )
        return str(issued["access_token"])


@pytest.fixture(scope="module")
def live_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveProvider, AdminTokens]]:
    directory = tmp_path_factory.mktemp("admin-fuzz")
    with provider_on_real_stores(directory, database_prefix="admin_fuzz") as provider:
        yield provider, AdminTokens(provider)


@pytest.mark.parametrize("operation_id", [operation.operation_id for operation in OPERATIONS])
def test_the_admin_api_answers_as_documented(
    live_admin: tuple[LiveProvider, AdminTokens], operation_id: str
) -> None:
    provider, tokens = live_admin
    schema = schemathesis.openapi.from_url(f"{provider.issuer}/admin/api/v1/openapi.json")
    operation = schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy())
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(
            base_url=f"{provider.issuer}/admin/api/v1",
            headers={"Authorization": f"Bearer {tokens.fresh()}"},
            checks=CHECKS,
        )

    answers_as_documented()
