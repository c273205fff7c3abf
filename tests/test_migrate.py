"""`idp migrate` from several instances starting at once: each waits its turn, all succeed, and the
schema reaches the newest revision once (PostgreSQL: an advisory lock; SQLite: a file lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from support.live import CHECKOUT_IDP, free_port, write_config
from support.services import dedicated_database

from idp.store.database import MIGRATIONS

INSTANCES = 4
# `idp migrate` as each instance runs it, held back (its imports done) until every one is ready: the
# migrations then start within milliseconds of each other, not a process start-up apart.
AT_THE_SIGNAL = """
import sys, time
from pathlib import Path
from idp.cli import main
ready, go, config = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.exit(main(["--config", config, "migrate"]))
"""


def newest_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'instance' / 'idp.sqlite3'}"
        return
    with dedicated_database(prefix="idp_migrate_") as url:
        yield url


def test_instances_migrating_at_once_all_succeed_and_reach_head_once(
    fresh_database: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, port=8000, database_url=fresh_database)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{number}" for number in range(INSTANCES)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", AT_THE_SIGNAL, str(flag), str(go), str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline and all(run.poll() is None for run in runs)
        time.sleep(0.01)
    go.touch()
    outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    head = newest_revision()
    assert [code for code, _out, _err in outcomes] == [0] * INSTANCES, [err for _c, _o, err in outcomes]
    assert {out.strip() for _code, out, _err in outcomes} == {f"database schema at revision {head}"}
    engine = create_engine(fresh_database)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            assert versions == [head]
            assert {"users", "factors", "clients"} <= set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_migrate_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    run = subprocess.run(
        [*CHECKOUT_IDP, "--config", str(config), "migrate"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 2
    assert run.stderr.startswith("idp: cannot reach the database:")
    assert len(run.stderr.strip().splitlines()) == 1


def test_serve_migrate_brings_a_fresh_database_to_head_before_serving(tmp_path: Path) -> None:
    """The container's command (`idp serve --migrate`): no separate step needed for one instance."""
    with dedicated_database(prefix="idp_serve_migrate_") as url:
        port = free_port()
        config = write_config(tmp_path, port=port, database_url=url)
        elsewhere = {**os.environ, "IDP_DATABASE__URL": f"sqlite:///{tmp_path / 'keys-only.sqlite3'}"}
        init = subprocess.run(  # the keys and secrets only: the served database stays empty
            [*CHECKOUT_IDP, "--config", str(config), "init"], env=elsewhere, capture_output=True, check=False
        )
        assert init.returncode == 0, init.stderr
        log = tmp_path / "serve.log"
        serving = subprocess.Popen(
            [*CHECKOUT_IDP, "--config", str(config), "serve", "--migrate", "--port", str(port)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not answers(f"http://127.0.0.1:{port}/health"):
                assert time.monotonic() < deadline and serving.poll() is None, log.read_text()
                time.sleep(0.2)
        finally:
            serving.terminate()
            serving.wait(timeout=30)
        assert f"database schema at revision {newest_revision()}" in log.read_text()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
