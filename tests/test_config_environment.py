"""Configuration from the environment (IDP_SECTION__KEY, secrets from files) and `idp config show | check`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.services import dedicated_database, emptied_redis

from idp.cli import main
from idp.config import ConfigError, Settings, load_settings

REDIS_URL_ENV = "IDP_TEST_REDIS_URL"
UNREACHABLE_DATABASE = "postgresql+psycopg://idp:db-password@127.0.0.1:1/idp"
UNREACHABLE_REDIS = "redis://:redis-password@127.0.0.1:1/0"


def settings_from(environ: dict[str, str], *, toml: str = "", directory: Path | None = None) -> Settings:
    config = None
    if directory is not None:
        config = directory / "idp.toml"
        config.write_text(toml)
    return load_settings(config, environ=environ)


@pytest.mark.parametrize(
    ("environ", "read", "expected"),
    [
        pytest.param({"IDP_SERVER__PORT": "9000"}, lambda s: s.server.port, 9000, id="a number"),
        pytest.param({"IDP_ISSUER": "https://id.example.com"}, lambda s: s.issuer, "https://id.example.com",
                     id="a top-level key"),
        pytest.param({"IDP_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8"]'},
                     lambda s: s.server.trusted_proxies, ("10.0.0.0/8",), id="a list, written as TOML"),
        pytest.param({"IDP_SMTP__PASSWORD": "123456"}, lambda s: s.smtp.password, "123456",
                     id="a text setting keeps digits as text"),
        pytest.param({"IDP_FACTORS__EMAIL__SIGN_IN": "true"}, lambda s: s.factors.email.sign_in, True,
                     id="a nested section"),
        pytest.param({"IDP_SERVER__ENGINE": "gunicorn"}, lambda s: s.server.engine, "gunicorn",
                     id="a choice, unquoted"),
        pytest.param({"IDP_CONFIG": "", "IDP_TEST_REDIS_URL": "redis://x"}, lambda s: s.redis.url, "",
                     id="variables naming no setting are left alone"),
    ],
)  # fmt: skip
def test_a_variable_overrides_the_setting_it_names(
    environ: dict[str, str], read: Any, expected: object
) -> None:
    assert read(settings_from(environ)) == expected


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    toml = "[server]\nport = 8001\nworkers = 3\n"
    settings = settings_from({"IDP_SERVER__PORT": "9001"}, toml=toml, directory=tmp_path)
    assert (settings.server.port, settings.server.workers) == (9001, 3)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"IDP_SERVER__PROT": "1"}, "server.prot: unknown key",
                     id="fails because of a typo in the key"),
        pytest.param({"IDP_SERVER__PORT": "eighty"}, "server.port",
                     id="fails because the value has the wrong type"),
        pytest.param({"IDP_DATABASE__URL_FILE": "/nonexistent/secret"},
                     "database.url_file: /nonexistent/secret", id="fails because the secret file is missing"),
    ],
)  # fmt: skip
def test_a_bad_variable_is_a_one_line_config_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        settings_from(environ)


def test_secrets_come_from_files_for_container_secrets(tmp_path: Path) -> None:
    (tmp_path / "db").write_text("postgresql+psycopg://idp:from-file@db/idp\n")
    (tmp_path / "smtp").write_text("smtp password\n")
    settings = settings_from(
        {"IDP_DATABASE__URL_FILE": str(tmp_path / "db")},
        toml=f'[smtp]\npassword_file = "{tmp_path / "smtp"}"\n',
        directory=tmp_path,
    )
    assert settings.database.url == "postgresql+psycopg://idp:from-file@db/idp"
    assert settings.smtp.password == "smtp password"


def test_a_secret_set_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    with pytest.raises(ConfigError, match=r"smtp\.password is set too"):
        settings_from({"IDP_SMTP__PASSWORD_FILE": str(tmp_path / "pw"), "IDP_SMTP__PASSWORD": "y"})


# -- idp config show | check ---------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("IDP_CONFIG", raising=False)
    monkeypatch.setenv("IDP_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("IDP_KEYS__DIRECTORY", str(tmp_path / "keys"))
    yield monkeypatch


def test_config_show_prints_the_effective_settings_with_secrets_masked(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("IDP_DATABASE__URL", UNREACHABLE_DATABASE)
    environment.setenv("IDP_REDIS__URL", UNREACHABLE_REDIS)
    environment.setenv("IDP_SMTP__PASSWORD", "smtp-password")
    environment.setenv("IDP_SERVER__PORT", "9002")
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "server.port = 9002" in shown.splitlines()
    assert 'database.url = "postgresql+psycopg://idp:***@127.0.0.1:1/idp"' in shown.splitlines()
    assert 'smtp.password = "***"' in shown.splitlines()
    for secret in ("db-password", "redis-password", "smtp-password"):
        assert secret not in shown


def test_config_check_names_every_store_that_does_not_answer(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("IDP_DATABASE__URL", UNREACHABLE_DATABASE)
    environment.setenv("IDP_REDIS__URL", UNREACHABLE_REDIS)
    environment.setenv("IDP_SMTP__HOST", "127.0.0.1")
    environment.setenv("IDP_SMTP__PORT", "1")
    with pytest.raises(SystemExit) as exited:
        main(["config", "check"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ")[1] for line in lines] == ["database", "redis", "smtp"]
    assert not [line for line in lines if "password" in line]


def test_config_check_passes_when_the_real_stores_answer(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_url = emptied_redis(os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/12"), env=REDIS_URL_ENV)
    with dedicated_database(prefix="idp_config_check_") as database_url:
        environment.setenv("IDP_DATABASE__URL", database_url)
        environment.setenv("IDP_REDIS__URL", redis_url)
        assert main(["config", "check"]) == 0
    assert "configuration valid" in capsys.readouterr().out


def test_a_bad_setting_fails_config_check_in_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("IDP_SERVER__WORKERS", "0")
    assert main(["config", "check"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "idp: config error: server.workers: Input should be greater than or equal to 1"
    ]


def test_init_refuses_when_redis_does_not_answer(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("IDP_REDIS__URL", UNREACHABLE_REDIS)
    assert main(["init"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("idp: redis redis://:***@127.0.0.1:1/0:") and "\n" not in error
