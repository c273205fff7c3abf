"""Settings are read once, validated, and every problem is one line that names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from idp.config import CONFIG_ENV, ConfigError, Settings, load_settings, settings_from_mapping


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own IDP_CONFIG must not leak into these tests."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def test_defaults_load_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings()

    assert settings == Settings()
    assert settings.issuer == "http://localhost:8000"
    assert settings.redis.url == ""
    assert settings.keys.algorithm == "ES256"
    assert settings.assurance.minimum == "mfa"
    assert settings.assurance.levels["phrh"].satisfied_by == (("pwd", "hwk"), ("hwk", "user"))
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'idp.sqlite3'}"
    assert not settings.secure_cookies


def _level(*ways: list[str]) -> dict[str, Any]:
    return {"satisfied_by": [list(way) for way in ways], "ttl": 900}


INVALID = [
    pytest.param(
        {"isuer": "https://idp.example"},
        "isuer: unknown key",
        id="fails because 'isuer' is a typo of issuer",
    ),
    pytest.param(
        {"tokens": {"code_lifetme": 30}},
        "tokens.code_lifetme: unknown key",
        id="fails because a nested key is misspelt",
    ),
    pytest.param(
        {"server": {"port": "8000"}},
        "server.port",
        id="fails because the port is a string, not an integer",
    ),
    pytest.param(
        {"redis": {"url": "redis://127.0.0.1:6379/0?max_connections=5"}},
        "redis.url: an option a Redis connection does not take",
        id="fails because max_connections is a client pool's option, which the provider does not use",
    ),
    pytest.param(
        {"server": {"threads": 0}},
        "server.threads",
        id="fails because a worker with no thread would answer nothing",
    ),
    pytest.param(
        {"sessions": {"lifetime": 600.5}},
        "sessions.lifetime",
        id="fails because a lifetime is a float, not whole seconds",
    ),
    pytest.param(
        {"tokens": {"code_lifetime": 3600}},
        "tokens.code_lifetime",
        id="fails because an authorization code may live at most 600 s",
    ),
    pytest.param(
        {"database": {"url": "nonsense://"}},
        "database.url: unsupported database 'nonsense'",
        id="fails because the database dialect is unsupported",
    ),
    pytest.param(
        {"database": {"url": "mysql://u@h/db"}},
        "database.url: unsupported database 'mysql'",
        id="fails because MySQL is not a supported database",
    ),
    pytest.param(
        {"redis": {"url": "http://127.0.0.1:6379"}},
        "redis.url",
        id="fails because the Redis URL has an http scheme",
    ),
    pytest.param(
        {"issuer": "localhost:8000"},
        "issuer: must be an absolute http(s) URL",
        id="fails because the issuer has no scheme",
    ),
    pytest.param(
        {"issuer": "ftp://idp.example"},
        "issuer: must be an absolute http(s) URL",
        id="fails because the issuer is not http(s)",
    ),
    pytest.param(
        {"issuer": "https://idp.example/"},
        "issuer: must have no query, fragment or trailing",
        id="fails because the issuer ends with a slash",
    ),
    pytest.param(
        {"issuer": "https://idp.example?tenant=1"},
        "issuer: must have no query",
        id="fails because the issuer has a query",
    ),
    pytest.param(
        {"keys": {"algorithm": "HS256"}},
        "keys.algorithm",
        id="fails because HS256 is not a signing algorithm we publish",
    ),
    pytest.param(
        {"assurance": {"levels": {"mfa": _level(["pwd", "sms"])}}},
        "assurance.levels.mfa.satisfied_by: unknown amr values ['sms']",
        id="fails because 'sms' is not an amr value",
    ),
    pytest.param(
        {"assurance": {"levels": {"mfa": _level([])}}},
        "assurance.levels.mfa.satisfied_by",
        id="fails because a way to reach a level lists no amr value",
    ),
    pytest.param(
        {"assurance": {"minimum": "gold"}},
        "assurance: minimum 'gold' is not one of the levels",
        id="fails because the minimum level is not defined",
    ),
    pytest.param(
        {"scopes": {"admin": {"acr": "gold"}}},
        "scopes.admin.acr: 'gold' is not a configured",
        id="fails because a scope asks for an undefined level",
    ),
    pytest.param(
        {"metrics": {"listen": "9464"}},
        "metrics.listen: must be host:port",
        id="fails because the metrics listener names no host",
    ),
    pytest.param(
        {"metrics": {"listen": "127.0.0.1:99999"}},
        "metrics.listen: must be host:port",
        id="fails because the metrics listener's port is out of range",
    ),
    pytest.param(
        {"metrics": {"bearer_token": "short"}},
        "metrics.bearer_token: needs at least 32 characters",
        id="fails because a short metrics token could be guessed",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), INVALID)
def test_invalid_settings_raise_one_line_naming_the_key(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config error: ")
    assert expected in message


def test_toml_arrays_load_as_frozen_settings() -> None:
    settings = settings_from_mapping(
        {
            "assurance": {
                "minimum": "strong",
                "levels": {"strong": _level(["pwd", "hwk"], ["hwk", "user"])},
            },
            "scopes": {"admin": {"acr": "strong", "max_age": 300}},
        }
    )

    assert settings.assurance.levels["strong"].satisfied_by == (("pwd", "hwk"), ("hwk", "user"))
    assert settings.scopes["admin"].max_age == 300


CONFIG_TOML = """\
issuer = "https://idp.example"
instance_dir = "/srv/idp"

[database]
url = "postgresql+psycopg://idp@db/idp"

[tokens]
access_token_lifetime = 300

[assurance.levels.mfa]
satisfied_by = [["pwd", "otp"], ["hwk", "user"]]
ttl = 3600
"""


def _write_config(tmp_path: Path, content: str = CONFIG_TOML) -> Path:
    path = tmp_path / "idp.toml"
    path.write_text(content, encoding="utf-8")
    return path


def _assert_is_the_example(settings: Settings) -> None:
    assert settings.issuer == "https://idp.example"
    assert settings.secure_cookies
    assert settings.database_url == "postgresql+psycopg://idp@db/idp"
    assert settings.tokens.access_token_lifetime == 300
    assert settings.tokens.id_token_lifetime == 600
    assert settings.assurance.levels["mfa"].satisfied_by == (("pwd", "otp"), ("hwk", "user"))
    assert set(settings.assurance.levels) == {"mfa"}


def test_reads_the_toml_file_given(tmp_path: Path) -> None:
    _assert_is_the_example(load_settings(_write_config(tmp_path)))


def test_reads_the_file_named_by_idp_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(_write_config(tmp_path)))

    _assert_is_the_example(load_settings())


def test_the_path_given_wins_over_idp_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))

    _assert_is_the_example(load_settings(_write_config(tmp_path)))


UNREADABLE = [
    pytest.param(None, "missing.toml", id="fails because the file does not exist"),
    pytest.param("issuer = \n", "not valid TOML", id="fails because the file is not TOML"),
    pytest.param('[server]\nport = "80"\n', "server.port", id="fails because a value in the file is invalid"),
]


@pytest.mark.parametrize(("content", "expected"), UNREADABLE)
def test_unreadable_files_raise_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, expected: str
) -> None:
    path = tmp_path / "missing.toml" if content is None else _write_config(tmp_path, content)
    monkeypatch.setenv(CONFIG_ENV, str(path))

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "\n" not in str(caught.value)
    assert expected in str(caught.value)


# -- [authorization_details.TYPE] (RFC 9396 types) -------------------------------------------------------

PAYMENT_TABLE = """
[authorization_details.payment]
schema = "schemas/payment.json"
title = "Pay {amount} to {creditorName}"
acr = "phr"
one_time = true
"""
PAYMENT_SCHEMA = (
    '{"type": "object", "properties": {"amount": {"type": "string"}, "creditorName": {"type": "string"}},'
    ' "required": ["amount"]}'
)


def test_a_schema_file_is_read_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "payment.json").write_text(PAYMENT_SCHEMA)
    (tmp_path / "idp.toml").write_text(PAYMENT_TABLE)
    monkeypatch.chdir("/")
    payment = load_settings(tmp_path / "idp.toml").authorization_details["payment"]
    assert payment.json_schema["required"] == ["amount"] and payment.acr == "phr" and payment.one_time


def test_an_inline_schema_keeps_its_arrays_as_json_schema_wants_them() -> None:
    raw = {
        "authorization_details": {
            "report": {"schema": {"type": "object", "required": ("name",)}, "title": "R"}
        }
    }
    assert settings_from_mapping(raw).authorization_details["report"].json_schema["required"] == ["name"]


def detail_type(**table: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"amount": {"type": "string"}}}
    return {"authorization_details": {"payment": {"schema": schema, "title": "Pay {amount}", **table}}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            detail_type(schema={"type": "no-such-type"}),
            "authorization_details.payment.schema: not a valid JSON Schema",
            id="an invalid schema",
        ),
        pytest.param(
            detail_type(schema="/nonexistent/payment.json"),
            "authorization_details.payment.schema: /nonexistent/payment.json: No such file",
            id="a missing schema file",
        ),
        pytest.param(
            detail_type(title="Pay {iban}"),
            "title: {iban} names no property the schema declares",
            id="a placeholder naming no property",
        ),
        pytest.param(
            detail_type(title="Pay {amount.__class__}"),
            "title: {amount.__class__} is not a plain {field} placeholder",
            id="a placeholder reaching into attributes",
        ),
        pytest.param(
            detail_type(title="Pay {amount"), "authorization_details.payment", id="an unclosed brace"
        ),
        pytest.param(
            detail_type(acr="gold"),
            "authorization_details.payment.acr: 'gold' is not a configured level",
            id="an unknown level",
        ),
    ],
)
def test_bad_authorization_details_types_are_refused_at_start(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
