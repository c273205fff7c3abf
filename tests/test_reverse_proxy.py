"""Through a real nginx terminating TLS: each client keeps its own address; a forged one changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.live import LiveProvider, free_port, start_provider
from support.oidc_client import Browser, Client, OpenIdProvider, create_account, register_client
from support.reverse_proxy import FromAddress, start_nginx

# The second wrong password from an address starts a wait: the third is refused unheard.
SETTINGS = 'trusted_proxies = ["127.0.0.1/32"]\n[throttle.password_address]\nfree_attempts = 1\n'
ALICE, BOB = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    directory = tmp_path_factory.mktemp("nginx")
    port = free_port()
    live = start_provider(directory, extra=SETTINGS, issuer=f"https://localhost:{port}")
    nginx = start_nginx(directory, port=port, upstream=f"http://127.0.0.1:{live.process.args[-1]}")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("REQUESTS_CA_BUNDLE", str(nginx.ca_file))
        yield live
    nginx.stop()
    live.stop()


def browser_at(live: LiveProvider, address: str) -> Browser:
    browser = Browser(OpenIdProvider(live.issuer))
    browser.http.mount("https://", FromAddress(address))
    return browser


def guesses(browser: Browser, client: Client, count: int) -> list[int]:
    page = browser.authorize(client).page
    statuses = []
    for guess in range(count):
        page = browser.submit(page, username=f"nobody-{guess}", password="wrong password")
        statuses.append(page.status_code)
    return statuses


def test_through_nginx_one_clients_failures_do_not_throttle_another(proxied: LiveProvider) -> None:
    client = register_client(proxied, "through-nginx", redirect_uri="https://127.0.0.1/cb")
    alice = browser_at(proxied, ALICE)
    alice.http.headers["X-Forwarded-For"] = BOB  # a forgery: nginx appends the real address after it
    assert guesses(alice, client, 3) == [401, 401, 429]
    bob = browser_at(proxied, BOB)
    _attempt, callback = bob.sign_in(client, create_account(proxied, "bob"))
    assert callback["code"], "a full sign-in over TLS, its CSRF checks passed"
    addresses = [event.ip for event in proxied.audit_events("sign_in")]
    assert set(addresses) == {ALICE, BOB}
