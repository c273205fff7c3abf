"""Every hosted page is accessible (WCAG 2.2 AA, issue 19 point 5), checked in Chromium on the one walk
of every page (tests/support/page_walk.py): axe-core finds nothing at 1280 and 390 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page
from support.accessibility import Violation, axe_source, axe_violations
from support.browser import DESKTOP, PHONE
from support.page_walk import walk_every_page, walk_provider

pytestmark = pytest.mark.browser

WIDTHS = {"1280 px": DESKTOP, "390 px": PHONE}


@dataclass(frozen=True)
class PageSeen:
    violations: dict[str, list[Violation]]


@pytest.fixture(scope="module")
def walked(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageSeen]:
    """Walk every page once; check each at both widths."""
    source = axe_source()
    seen: dict[str, PageSeen] = {}

    def visit(name: str, page: Page) -> None:
        violations = {}
        for label, size in WIDTHS.items():
            page.set_viewport_size(size)
            violations[label] = axe_violations(page, source)
        page.set_viewport_size(DESKTOP)
        seen[name] = PageSeen(violations=violations)

    with walk_provider(tmp_path_factory.mktemp("walk")) as provider:
        walk_every_page(provider, browser, visit)
    return seen


def test_axe_core_finds_nothing_on_any_page_at_either_width(walked: dict[str, PageSeen]) -> None:
    found = [
        f"{name} at {width}: {violation}"
        for name, page in walked.items()
        for width, violations in page.violations.items()
        for violation in violations
    ]
    assert not found, f"{len(found)} axe-core violation(s):\n" + "\n".join(found)
