"""`make screenshots`: a live provider (`idp serve`, embedded stores) walked in Chromium through every
hosted page (tests/support/page_walk.py), each saved at 1280 and 390 px wide into screenshots/
(git-ignored), for people to review."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE  # noqa: E402
from support.page_walk import walk_every_page, walk_provider  # noqa: E402

OUT = ROOT / "screenshots"
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}


def shoot(name: str, page: Page) -> None:
    for label, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.screenshot(path=str(OUT / f"{name}-{label}.png"), full_page=True)
    print(f"  {name}")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the walk's app: no line per request
    with (
        tempfile.TemporaryDirectory(prefix="idp-screenshots-") as directory,
        walk_provider(Path(directory)) as provider,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            walk_every_page(provider, browser, shoot)
        finally:
            browser.close()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
