"""The demo's logs never print an authorization code, nor the `state` that goes with it: the real demo
relying party (examples/demo_rp.py) signs a user in from a real provider, then its access log and the
provider's log are searched for the values the redirect carried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support.browser import DemoApp, running_demo_app
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser, OpenIdProvider, create_account, location


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[LiveProvider, DemoApp]]:
    provider = start_provider(tmp_path, host="localhost")
    try:
        with running_demo_app(provider, tmp_path) as app:
            yield provider, app
    finally:
        provider.stop()


def test_the_demo_access_log_shows_the_callback_but_not_its_code_or_state(
    demo: tuple[LiveProvider, DemoApp], tmp_path: Path
) -> None:
    provider, app = demo
    agent = Browser(OpenIdProvider(provider.issuer))
    start = agent.http.get(f"{app.base}/login", allow_redirects=False)
    authorization = location(start)
    assert authorization is not None and authorization.startswith(f"{provider.issuer}/authorize?")
    back = location(agent.pass_sign_in(agent.visit(authorization), create_account(provider, "logs")))
    assert back is not None and back.startswith(app.redirect_uri + "?")
    sent = {name: values[0] for name, values in parse_qs(urlsplit(back).query).items()}
    signed_in = agent.http.get(back, timeout=10)
    assert signed_in.status_code == 200 and 'id="signed-in"' in signed_in.text, "the code was redeemed"

    access_log = (tmp_path / "demo_rp.log").read_text()
    assert "GET /callback?code=[redacted]&state=[redacted]" in access_log, access_log
    provider_log = (tmp_path / "idp-serve.log").read_text()
    for secret in (sent["code"], sent["state"]):
        assert secret not in access_log
        assert secret not in provider_log
