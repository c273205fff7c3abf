"""Every hosted page is accessible (WCAG 2.2 AA, issue 19 point 5), checked in Chromium on the one walk
of every page (tests/support/page_walk.py): axe-core finds nothing at 1280 and 390 px; focus goes to
the first field with an error, which the error describes; the navigation marks the current page; each
button says what it acts on; field borders and focus rings reach 3:1, with the operator's colours too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from support.accessibility import (
    MIN_NON_TEXT_CONTRAST,
    Button,
    Contrast,
    FocusAfterLoad,
    NavigationLink,
    Violation,
    axe_source,
    axe_violations,
    buttons,
    focus_after_load,
    navigation_links,
    non_text_contrast,
)
from support.browser import DESKTOP, PHONE
from support.live import LiveProvider, start_provider
from support.page_walk import walk_every_page, walk_provider

pytestmark = pytest.mark.browser

WIDTHS = {"1280 px": DESKTOP, "390 px": PHONE}
# Forms the walk sends back refused: each must mark its field invalid and move the focus to it.
REFUSED_FORMS = (
    "signin-password-wrong",
    "enrol-wrong-code",
    "signin-factor-wrong-code",
    "signin-factor-wrong-recovery-code",
    "account-totp-wrong-code",
    "account-email-refused",
    "account-email-verify-wrong-code",
    "account-password-refused",
    "account-password-differ",
    "device-wrong-code",
    "new-password-refused",
    "signin-new-password-refused",
    "admin-audit-refused",
)
# Pages reached from a navigation bar: the bar says which one is open.
NAVIGATED = (
    "account",
    "account-sessions",
    "account-offline-access",
    "account-applications",
    "account-history",
    "admin-users",
    "admin-clients",
    "admin-audit",
)
# A verb alone says nothing when it acts on one of several things (a factor, a session, an app, a
# user). "Sign out" is not among them: a browser has one session here. The name is the button's own
# text, some of it visually hidden, never an ARIA label alone: what people see is what they hear
# and what voice control answers to (WCAG 2.2 2.5.3).
BARE_VERBS = frozenset(
    {"remove", "delete", "end", "end session", "revoke", "remove access", "disable", "enable", "reset"}
)


@dataclass(frozen=True)
class PageSeen:
    violations: dict[str, list[Violation]]
    buttons: list[Button]
    focus: FocusAfterLoad
    navigation: list[NavigationLink]
    contrast: list[Contrast]


@pytest.fixture(scope="module")
def walked(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageSeen]:
    """Walk every page once; read each as loaded (focus), at both widths (axe), then its controls."""
    source = axe_source()
    seen: dict[str, PageSeen] = {}

    def visit(name: str, page: Page) -> None:
        focus = focus_after_load(page)
        violations = {}
        for label, size in WIDTHS.items():
            page.set_viewport_size(size)
            violations[label] = axe_violations(page, source)
        page.set_viewport_size(DESKTOP)
        seen[name] = PageSeen(
            violations=violations,
            buttons=buttons(page, source),
            focus=focus,
            navigation=navigation_links(page),
            contrast=non_text_contrast(page),
        )

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


def test_focus_goes_to_the_first_field_with_an_error_which_the_error_describes(
    walked: dict[str, PageSeen],
) -> None:
    assert set(REFUSED_FORMS) <= set(walked), set(REFUSED_FORMS) - set(walked)
    wrong = []
    for name, page in walked.items():
        focus = page.focus
        if not focus.errors:
            if focus.invalid:
                wrong.append(f"{name}: {focus.invalid[0][0]} is marked invalid with no error shown")
            continue
        if not focus.invalid:
            wrong.append(f"{name}: the error {focus.errors[0]!r} is tied to no field (aria-invalid)")
            continue
        first, _ = focus.invalid[0]
        if focus.focused != first:
            wrong.append(f"{name}: the focus is on {focus.focused}, not on {first}")
        for field, described in focus.invalid:
            if not any(error in described for error in focus.errors):
                wrong.append(f"{name}: {field} is described by {described!r}, not by its error")
    missed = [name for name in REFUSED_FORMS if not walked[name].focus.invalid]
    assert not wrong and not missed, "\n".join(
        wrong + [f"{name}: no field marked invalid" for name in missed]
    )


def test_the_navigation_marks_the_current_page(walked: dict[str, PageSeen]) -> None:
    wrong = [
        f"{name}: {link.label} link to {link.path} has aria-current={link.current!r}"
        for name, page in walked.items()
        for link in page.navigation
        if (link.current == "page") != link.is_this_page
    ]
    unmarked = [
        name for name in NAVIGATED if not any(link.current == "page" for link in walked[name].navigation)
    ]
    assert not wrong and not unmarked, "\n".join(wrong + [f"{name}: no link marked" for name in unmarked])


def test_every_button_says_what_it_acts_on(walked: dict[str, PageSeen]) -> None:
    wrong = []
    for name, page in walked.items():
        acting: defaultdict[str, set[str]] = defaultdict(set)
        for button in page.buttons:
            acting[button.name].add(button.acts_on)
            if not button.name:
                wrong.append(f"{name}: a button with no name: {button.html}")
            elif button.aria_labelled:
                wrong.append(f"{name}: say it in the text (a visually-hidden part if need be): {button.html}")
            elif button.name.lower() in BARE_VERBS:
                wrong.append(f"{name}: {button.name!r} does not say what it acts on: {button.html}")
        wrong += [
            f"{name}: {len(targets)} buttons named {label!r} act on different things: {sorted(targets)}"
            for label, targets in acting.items()
            if len(targets) > 1
        ]
    assert not wrong, "\n".join(wrong)


def test_field_borders_and_focus_rings_stand_out_3_to_1(walked: dict[str, PageSeen]) -> None:
    assert any(seen.what == "field border" for page in walked.values() for seen in page.contrast)
    weak = [
        f"{name}: {seen.what} {seen.ratio}:1 on {seen.element}"
        for name, page in walked.items()
        for seen in page.contrast
        if seen.ratio < MIN_NON_TEXT_CONTRAST
    ]
    assert not weak, "\n".join(weak)


BRANDING = '[branding]\naccent_colour = "#7a1f5c"\nbackground_colour = "#e6eef2"\n'


@pytest.fixture
def branded(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path, host="localhost", extra=BRANDING)
    try:
        yield provider
    finally:
        provider.stop()


def test_the_operators_colours_keep_text_borders_and_focus_rings_readable(
    branded: LiveProvider, browser: Browser
) -> None:
    """The accent and background from [branding] on the front page, the password page and an error page."""
    source = axe_source()
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        found = []
        for path in ("/", "/account", "/no-such-page"):
            page.goto(branded.issuer + path)
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(230, 238, 242)"
            for label, size in WIDTHS.items():
                page.set_viewport_size(size)
                found += [f"{path} at {label}: {violation}" for violation in axe_violations(page, source)]
                found += [
                    f"{path} at {label}: {seen.what} {seen.ratio}:1 on {seen.element}"
                    for seen in non_text_contrast(page)
                    if seen.ratio < MIN_NON_TEXT_CONTRAST
                ]
        assert not found, "\n".join(found)
    finally:
        context.close()
