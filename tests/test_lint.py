"""`make lint`: ruff (lint and format) and mypy --strict on idp/, set up from a fresh clone, run by CI
before the suite. `make run` installs the package once, and again only when pyproject.toml changes.

make runs for real in copies of this checkout (its tracked and new files, as a clone has them, so no
virtualenv): a dry run shows what a fresh clone would do, and the checks run with the suite's own
virtualenv taken as set up (`--assume-old`), so no test installs anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the virtualenv running the suite: it has ruff and mypy


def fresh_copy(tmp_path: Path) -> Path:
    """This checkout's files as a clone has them: tracked and new ones, nothing git ignores."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        if (REPOSITORY / name).is_file():  # a tracked file deleted in the checkout is listed too
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPOSITORY / name, copy / name)
    return copy


def make(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def lint_with_the_suites_venv(directory: Path) -> subprocess.CompletedProcess[str]:
    return make(directory, f"VENV={VENV}", f"--assume-old={VENV}/.dev-installed", "lint")


def test_make_lint_in_a_fresh_clone_sets_up_the_venv_then_runs_ruff_and_mypy(tmp_path: Path) -> None:
    plan = make(fresh_copy(tmp_path), "--dry-run", "lint")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q -e '.[test]'",
        "touch .venv/.dev-installed",
        ".venv/bin/ruff check idp tests",
        ".venv/bin/ruff format --check idp tests",
        ".venv/bin/mypy --strict idp/",
    ]


def test_make_lint_passes_on_this_checkout(tmp_path: Path) -> None:
    done = lint_with_the_suites_venv(fresh_copy(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout, "mypy ran to the end"


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        pytest.param("import os\n", "F401", id="fails because ruff check finds an unused import"),
        pytest.param(
            "NAME = 'quoted'\n", "would be reformatted", id="fails because ruff format would change it"
        ),
        pytest.param(
            '\ndef answer() -> int:\n    return "42"\n',
            "Incompatible return value type",
            id="fails because mypy --strict finds a type error",
        ),
    ],
)
def test_make_lint_fails(tmp_path: Path, source: str, complaint: str) -> None:
    copy = fresh_copy(tmp_path)
    (copy / "idp" / "habits.py").write_text(f'"""A module written to break a habit."""\n\n{source}')
    done = lint_with_the_suites_venv(copy)
    assert done.returncode != 0
    assert complaint in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("failing", "ran", "succeeds"),
    [
        pytest.param("", ["lint", "test"], True, id="lint then the suite"),
        pytest.param("lint", ["lint"], False, id="fails because lint failed: the suite does not run"),
    ],
)
def test_ci_runs_make_lint_before_make_test(
    tmp_path: Path, failing: str, ran: list[str], succeeds: bool
) -> None:
    """.ci/run as CI starts it, with a `make` on the PATH that records its targets (and fails one)."""
    calls = tmp_path / "calls"
    recorder = tmp_path / "bin" / "make"
    recorder.parent.mkdir()
    recorder.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n[ "$*" != "{failing}" ]\n')
    recorder.chmod(0o755)
    done = subprocess.run(
        [REPOSITORY / ".ci" / "run"],
        env={**os.environ, "PATH": f"{recorder.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode == 0) == succeeds, done.stderr
    assert calls.read_text().splitlines() == ran


def test_make_run_installs_once_and_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path)
    catalogues = sorted((copy / "idp" / "translations").glob("*/LC_MESSAGES/messages.po"))
    assert catalogues, "the Chinese catalogue is in the checkout"
    assert make(copy, "--dry-run", "run").stdout.splitlines() == [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q -e .",
        "touch .venv/.run-installed",
        *(
            f".venv/bin/pybabel --quiet compile --input-file {po.relative_to(copy)}"
            f" --output-file {po.with_suffix('.mo').relative_to(copy)}"
            for po in catalogues
        ),
        ".venv/bin/idp demo",
    ]
    (copy / ".venv" / "bin").mkdir(parents=True)
    (copy / ".venv" / "bin" / "python").touch()
    for po in catalogues:  # compiled by the install (hatch_build.py), newer than their sources
        po.with_suffix(".mo").touch()
    installed = copy / ".venv" / ".run-installed"
    installed.touch()
    later = (copy / "pyproject.toml").stat().st_mtime + 10
    os.utime(installed, (later, later))
    assert make(copy, "--dry-run", "run").stdout.splitlines() == [".venv/bin/idp demo"]
    os.utime(copy / "pyproject.toml", (later + 10, later + 10))
    assert make(copy, "--dry-run", "run").stdout.splitlines() == [
        ".venv/bin/pip install -q -e .",
        "touch .venv/.run-installed",
        ".venv/bin/idp demo",
    ]
