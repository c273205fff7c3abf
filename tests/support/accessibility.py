"""What the accessibility tests read from a page in Chromium: axe-core's violations.

axe-core is the npm package pinned in tests/axe (scripts/prepare-test-machine installs it). It is run
through page.evaluate, which the page's Content-Security-Policy (script-src 'self') does not govern,
so every page is checked under the policy people get.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[1] / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA, and Deque's best practices (landmarks, one h1, ...).
RULE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice")


def axe_source() -> str:
    """axe.min.js, or the test fails saying how to install it (never a skip: CI must run it)."""
    if not AXE.is_file():
        pytest.fail(
            f"{AXE} is missing: run `npm ci --prefix tests/axe` (scripts/prepare-test-machine does)",
            pytrace=False,
        )
    return AXE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Violation:
    """One axe-core rule a page breaks, and where."""

    rule: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} at {', '.join(self.targets)} [{self.help_url}]"


def _with_axe(page: Page, source: str) -> None:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)


def axe_violations(page: Page, source: str) -> list[Violation]:
    _with_axe(page, source)
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        list(RULE_TAGS),
    )
    return [
        Violation(
            rule=found["id"],
            impact=found.get("impact") or "",
            help=found["help"],
            help_url=found["helpUrl"],
            targets=tuple(" ".join(node["target"]) for node in found["nodes"]),
        )
        for found in result["violations"]
    ]
