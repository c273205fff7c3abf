"""Every hosted page in Simplified Chinese, in Chromium (issue 19, point 4).

A browser whose language is zh-CN takes the walk of every page (tests/support/page_walk.py: sign-in,
first factor and recovery codes, consent, step-up and approval, every account page, the device flow,
password resets, sign-out, the admin console, the error pages). On each page <html lang> names
Chinese, the text and the title are Chinese, and no English phrase of the catalogue shows. Then the
switcher turns an English page Chinese, and the choice stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po
from playwright.sync_api import Browser, Page, expect
from support.browser import DESKTOP
from support.live import LiveProvider, start_provider
from support.page_walk import walk_every_page, walk_provider

CATALOGUE = Path(__file__).resolve().parents[2] / "idp/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
CJK = re.compile(r"[\u4e00-\u9fff]")
# English by design, for whoever looks into it: a protocol's description of an error (lang="en"),
# the console's audit records and a client's registration values, a session's raw User-Agent.
RAW_DATA = ('[lang="en"]', "table.history tbody", "table.history code", ".sessions strong")
# The page's text as a person reads it: without scripts, the language switcher's own names, and the
# parts `ignored` names.
VISIBLE_TEXT = """(ignored) => {
  const body = document.body.cloneNode(true);
  for (const selector of ["script", "style", "noscript", "nav.languages", ...ignored]) {
    body.querySelectorAll(selector).forEach((element) => element.remove());
  }
  return body.textContent;
}"""


def english_phrases() -> list[str]:
    """Every phrase of two words or more that the English pages say: the catalogue's messages without
    their markup, cut at their placeholders."""
    with CATALOGUE.open("rb") as po:
        messages = [entry.id for entry in read_po(po) if entry.id]
    phrases: set[str] = set()
    for message in messages:
        for text in message if isinstance(message, tuple) else (message,):
            for part in re.split(r"%\(\w+\)[sd]", re.sub(r"<[^>]+>", " ", text)):
                words = part.strip(" .,:;?!()'“”").split()
                if len(words) >= 2:
                    phrases.add(" ".join(words))
    return sorted(phrases)


@dataclass
class ChinesePages:
    """What the walk's `visit` does on each page; `seen` names the pages, in order."""

    phrases: list[str] = field(default_factory=english_phrases)
    seen: list[str] = field(default_factory=list)

    def __call__(self, name: str, page: Page) -> None:
        expect(page.locator("html")).to_have_attribute("lang", "zh-Hans-CN")
        shown = " ".join(str(page.evaluate(VISIBLE_TEXT, list(RAW_DATA))).split())
        assert CJK.search(shown), f"{name} ({page.url}): no Chinese text"
        assert CJK.search(page.title()), f"{name}: the title {page.title()!r} is not Chinese"
        leaked = [phrase for phrase in self.phrases if phrase in shown]
        assert leaked == [], f"{name} ({page.url}) shows English: {leaked}"
        self.seen.append(name)


def test_every_page_speaks_simplified_chinese(tmp_path: Path, browser: Browser) -> None:
    chinese = ChinesePages()

    with walk_provider(tmp_path) as provider:
        walk_every_page(provider, browser, chinese, context_options={"locale": "zh-CN"})

    assert {"signin-password", "enrol-choice", "first-recovery-codes", "consent", "step-up"} <= set(
        chinese.seen
    )
    assert {"account", "device-done", "new-password", "signed-out", "admin-user", "error-503"} <= set(
        chinese.seen
    )
    assert len(chinese.seen) > 50, chinese.seen


def test_the_switcher_turns_a_page_chinese_and_the_choice_stays(tmp_path: Path, browser: Browser) -> None:
    provider: LiveProvider = start_provider(tmp_path, host="localhost")
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{provider.issuer}/no-such-page")
        expect(page.locator("html")).to_have_attribute("lang", "en")

        page.locator("nav.languages a[hreflang='zh-Hans-CN']").click()

        page.wait_for_url(f"{provider.issuer}/no-such-page")
        expect(page.locator("html")).to_have_attribute("lang", "zh-Hans-CN")
        expect(page.locator("h1")).to_have_text("找不到页面")
        page.goto(f"{provider.issuer}/")
        expect(page.locator("h1")).to_have_text("身份提供方")
        expect(page.locator("nav.languages a[aria-current=true]")).to_have_text("简体中文")
    finally:
        context.close()
        provider.stop()
