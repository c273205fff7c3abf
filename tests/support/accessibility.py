"""What the accessibility tests read from a page in Chromium: axe-core's violations, each button with
its accessible name and what it acts on, where the focus is after a refused form, which navigation
link says it is the current page, and the contrast of field borders and focus rings.

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
MIN_NON_TEXT_CONTRAST = 3.0  # WCAG 2.2 1.4.11: field borders and focus indicators


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


@dataclass(frozen=True)
class Button:
    """A button (or a link drawn as one) as assistive technology names it, whether that name is an
    ARIA label rather than its text, and what pressing it does: the form it submits with its own
    name=value, the script endpoint it calls, or where it leads."""

    name: str
    aria_labelled: bool
    acts_on: str
    html: str


@dataclass(frozen=True)
class FocusAfterLoad:
    """Where the focus is once the page has loaded, the fields marked invalid (in document order) with
    the text of what describes them, and the visible error messages."""

    focused: str
    invalid: tuple[tuple[str, str], ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class NavigationLink:
    label: str
    path: str
    current: str | None
    is_this_page: bool


@dataclass(frozen=True)
class Contrast:
    """The contrast of a field's border, or of a focus ring, against the colours next to it."""

    what: str
    element: str
    ratio: float


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


def buttons(page: Page, source: str) -> list[Button]:
    """Every visible button; names as axe-core computes them (accessible name and description spec)."""
    _with_axe(page, source)
    return [Button(**seen) for seen in page.evaluate(BUTTONS)]


BUTTONS = """() => {
  axe.setup(document);
  try {
    const shown = (element) => element.checkVisibility({visibilityProperty: true});
    const actsOn = (element) => {
      if (element.tagName === "A") return "GET " + element.href;
      const form = element.form;
      if (element.type === "submit" && form) {
        const own = element.name ? ` ${element.name}=${element.value}` : "";
        return `${form.method.toUpperCase()} ${form.action}${own}`;
      }
      return element.dataset.verify || element.id || element.outerHTML;
    };
    return [...document.querySelectorAll("button, a.button, [role=button]")].filter(shown).map((element) => ({
      name: axe.commons.text.accessibleText(element).replace(/\\s+/g, " ").trim(),
      aria_labelled: element.hasAttribute("aria-label") || element.hasAttribute("aria-labelledby"),
      acts_on: actsOn(element),
      html: element.outerHTML.slice(0, 300),
    }));
  } finally {
    axe.teardown();
  }
}"""


def focus_after_load(page: Page) -> FocusAfterLoad:
    """Read after two frames: the browser focuses an `autofocus` field when it next renders."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    seen = page.evaluate(FOCUS)
    return FocusAfterLoad(
        focused=seen["focused"],
        invalid=tuple((field, described) for field, described in seen["invalid"]),
        errors=tuple(seen["errors"]),
    )


FOCUS = """() => {
  const describe = (element) => element && element !== document.body
    ? `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}` : "body";
  const text = (element) => (element ? element.textContent.replace(/\\s+/g, " ").trim() : "");
  const invalid = [...document.querySelectorAll("[aria-invalid=true]")].map((field) => [
    describe(field),
    (field.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean)
      .map((id) => text(document.getElementById(id))).join(" "),
  ]);
  const errors = [...document.querySelectorAll("main .error")]
    .filter((element) => element.checkVisibility() && text(element))
    .map(text);
  return {focused: describe(document.activeElement), invalid, errors};
}"""


def navigation_links(page: Page) -> list[NavigationLink]:
    """The links of every navigation landmark but paging ones (rel next/prev)."""
    return [NavigationLink(**seen) for seen in page.evaluate(NAVIGATION)]


NAVIGATION = """() => [...document.querySelectorAll("nav")].flatMap((nav) =>
  [...nav.querySelectorAll("a[href]:not([rel])")].map((link) => ({
    label: nav.getAttribute("aria-label") || "",
    path: link.pathname,
    current: link.getAttribute("aria-current"),
    is_this_page: link.pathname === location.pathname,
  })))"""


def non_text_contrast(page: Page) -> list[Contrast]:
    """Each visible text field's border against the colours inside and around it, and the focus ring
    of each visible control against the colour around it (the ring is drawn outside the control).
    Focusing the controls one by one is all it changes; the focus goes back where it was."""
    return [Contrast(**seen) for seen in page.evaluate(CONTRAST)]


CONTRAST = """() => {
  const parse = (colour) => {
    const [r, g, b, a = 1] = colour.match(/[\\d.]+/g).map(Number);
    return {r, g, b, a};
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const backgroundOf = (element) => {
    const layers = [];
    for (let node = element; node instanceof Element; node = node.parentElement) {
      const layer = parse(getComputedStyle(node).backgroundColor);
      if (layer.a > 0) layers.push(layer);
      if (layer.a === 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), {r: 255, g: 255, b: 255, a: 1});
  };
  const luminance = ({r, g, b}) => {
    const [R, G, B] = [r, g, b].map((c) => {
      const s = c / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const ratio = (one, other) => {
    const [light, dark] = [luminance(one), luminance(other)].sort((x, y) => y - x);
    return Math.round(((light + 0.05) / (dark + 0.05)) * 100) / 100;
  };
  const shown = (element) => element.checkVisibility({visibilityProperty: true});
  const name = (element) => element.outerHTML.slice(0, 120);
  const found = [];
  const fields = "input[type=text], input[type=password], input[type=email]";
  for (const field of document.querySelectorAll(fields)) {
    if (!shown(field)) continue;
    const style = getComputedStyle(field);
    const border = parse(style.borderTopColor);
    const inside = backgroundOf(field);
    const around = backgroundOf(field.parentElement);
    found.push({what: "field border", element: name(field),
                ratio: Math.min(ratio(over(border, around), around), ratio(over(border, inside), inside))});
  }
  const before = document.activeElement;
  const controls = "a[href], button, input:not([type=hidden]), summary, select, textarea";
  for (const control of document.querySelectorAll(controls)) {
    if (!shown(control)) continue;
    control.focus();
    const style = getComputedStyle(control);
    const around = backgroundOf(control.parentElement);
    const width = parseFloat(style.outlineWidth);
    const visible = style.outlineStyle !== "none" && width >= 2;
    found.push({what: "focus ring", element: name(control),
                ratio: visible ? ratio(over(parse(style.outlineColor), around), around) : 0});
  }
  if (before instanceof HTMLElement) before.focus(); else document.activeElement.blur();
  return found;
}"""
