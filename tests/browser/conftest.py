"""Browser tests: Debian's Chromium (Playwright) against a real `idp serve` and the demo app.

The provider's issuer is http://localhost:PORT: WebAuthn needs a domain, not an IP address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from support.browser import DemoApp, chromium, running_demo_app
from support.live import LiveProvider, start_provider


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path, host="localhost")
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def demo_app(provider: LiveProvider, tmp_path: Path) -> Iterator[DemoApp]:
    with running_demo_app(provider, tmp_path) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
