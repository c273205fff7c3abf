"""Discovery, JWKS and health: what a relying party and a load balancer read first."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from support.app import Browser, add_client, make_app, make_settings

from idp.app import create_app
from idp.config import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent


def test_discovery_advertises_what_is_implemented_under_the_issuer(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    document = client.get("/.well-known/openid-configuration").get_json()
    issuer = document["issuer"]
    for name, value in document.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            assert value.startswith(issuer + "/"), name
            assert client.get(urlsplit(value).path).status_code != 404, name
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["claims_parameter_supported"] is True
    assert {"acr", "amr", "auth_time", "sid"} <= set(document["claims_supported"])
    assert {"mfa", "phr", "phrh"} <= set(document["acr_values_supported"])
    assert document["response_types_supported"] == ["code"]


MFA_URI = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"


def test_discovery_lists_the_configured_scopes_and_every_acr_alias(tmp_path: Path) -> None:
    scopes = {"payments:write": {"acr": "phr", "max_age": 300}, "reports:read": {}}
    document = (
        make_app(tmp_path, scopes=scopes).test_client().get("/.well-known/openid-configuration").get_json()
    )
    assert document["scopes_supported"] == [
        "openid",
        "profile",
        "email",
        "offline_access",
        "payments:write",
        "reports:read",
    ]
    assert document["acr_values_supported"] == ["mfa", MFA_URI, "phr", "phrh"]


def test_jwks_publishes_public_keys_only(tmp_path: Path) -> None:
    keys = make_app(tmp_path).test_client().get("/jwks.json").get_json()["keys"]
    assert {key["alg"] for key in keys} == {"ES256", "RS256"}
    private_members = {"d", "p", "q", "dp", "dq", "qi"}
    assert all(not (private_members & set(key)) for key in keys)


def test_health_reports_both_stores(tmp_path: Path, redis_url: str) -> None:
    response = make_app(tmp_path, redis={"url": redis_url}).test_client().get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "failing": []}


def test_health_fails_closed_when_redis_is_unreachable(tmp_path: Path) -> None:
    make_app(tmp_path)  # initialized while the stores answered (`idp init` refuses otherwise)
    app = create_app(make_settings(tmp_path, redis={"url": "redis://127.0.0.1:1/0"}))
    response = app.test_client().get("/health")
    assert response.status_code == 503 and response.get_json()["failing"] == ["ephemeral"]
    browser = Browser(app.test_client(), add_client(app)[0])
    browser.client.set_cookie("idp_session", "an-existing-session")
    for page in (browser.client.get("/"), browser.authorize()):
        assert page.status_code == 503 and "Temporarily unavailable" in page.get_data(as_text=True)


def test_config_example_documents_the_defaults() -> None:
    assert load_settings(PROJECT / "config.example.toml") == Settings()


def test_discovery_advertises_back_and_front_channel_logout_with_sid(tmp_path: Path) -> None:
    document = make_app(tmp_path).test_client().get("/.well-known/openid-configuration").get_json()
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["frontchannel_logout_supported"] is True
    assert document["frontchannel_logout_session_supported"] is True
