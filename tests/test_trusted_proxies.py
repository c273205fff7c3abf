"""Behind a reverse proxy: only a trusted peer's Forwarded / X-Forwarded-* headers name the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.app import make_settings
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser, Client, OpenIdProvider, create_account, register_client

from idp.config import ConfigError
from idp.trusted_proxies import ClientOrigin, parse_networks, resolve_client

PROXIES = parse_networks(["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"])
# The second wrong password from an address starts a wait: the third is refused unheard.
FAST_ADDRESS_THROTTLE = "[throttle.password_address]\nfree_attempts = 1\n"
ALICE, BOB = "198.51.100.7", "203.0.113.9"


XFF, PROTO, HOST = "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"
TRUSTED = "127.0.0.1"
FORWARDED_IPV6 = 'for=6.6.6.6, for="[2001:db9::17]:4711";proto=https;host=id.example.com'
CASES = [
    ("ignored because the peer is not a trusted proxy", "198.51.100.1", {XFF: "1.2.3.4"}, ("198.51.100.1",)),
    ("the trusted peer itself when it forwards nothing", TRUSTED, {}, (TRUSTED,)),
    ("the address the trusted proxy saw", TRUSTED, {XFF: "1.2.3.4"}, ("1.2.3.4",)),
    ("right-most untrusted wins: the left part is forged", TRUSTED, {XFF: "6.6.6.6, 1.2.3.4"}, ("1.2.3.4",)),
    ("a chain of trusted proxies is walked", TRUSTED, {XFF: "6.6.6.6, 1.2.3.4, 10.1.2.3"}, ("1.2.3.4",)),
    ("all trusted: the left-most", TRUSTED, {XFF: "10.9.9.9, 10.1.2.3"}, ("10.9.9.9",)),
    ("garbage left of the client does not matter", TRUSTED, {XFF: "garbage, 1.2.3.4"}, ("1.2.3.4",)),
    ("an address that is none stops the walk at the proxy", TRUSTED, {XFF: "not-an-address"}, (TRUSTED,)),
    (
        "scheme and host from X-Forwarded-*",
        TRUSTED,
        {XFF: "1.2.3.4", PROTO: "https", HOST: "id.example.com"},
        ("1.2.3.4", "https", "id.example.com"),
    ),
    (
        "a scheme or host that is none is ignored",
        TRUSTED,
        {XFF: "1.2.3.4", PROTO: "gopher", HOST: "a b/c"},
        ("1.2.3.4",),
    ),
    (
        "Forwarded (RFC 7239) wins over X-Forwarded-*; IPv6 with a port",
        TRUSTED,
        {"Forwarded": FORWARDED_IPV6, XFF: "5.6.7.8"},
        ("2001:db9::17", "https", "id.example.com"),
    ),
    ("a trusted IPv6 peer", "2001:db8::1", {"Forwarded": "for=1.2.3.4;proto=http"}, ("1.2.3.4", "http")),
    ("for=unknown stops the walk at the proxy", TRUSTED, {"Forwarded": "for=unknown"}, (TRUSTED,)),
]


@pytest.mark.parametrize(("peer", "headers", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_the_client_origin_is_what_the_trusted_proxies_say(
    peer: str, headers: dict[str, str], expected: tuple[str, ...]
) -> None:
    address, scheme, host = (*expected, None, None)[:3]
    assert resolve_client(peer=peer, headers=headers, trusted_proxies=PROXIES) == ClientOrigin(
        address, scheme, host
    )


@pytest.mark.parametrize("value", ["10.0.0.1/8", "localhost", "300.1.1.1/32"])
def test_a_trusted_proxy_that_is_no_cidr_is_a_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        make_settings(tmp_path, server={"trusted_proxies": (value,)})


# -- the live server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """A provider whose reverse proxy is on this machine (the tests' requests come from 127.0.0.1)."""
    live = start_provider(
        tmp_path_factory.mktemp("proxied"),
        extra=f'trusted_proxies = ["127.0.0.1/32"]\n{FAST_ADDRESS_THROTTLE}',
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """A provider that trusts a proxy elsewhere: the tests' requests come straight from an untrusted peer."""
    live = start_provider(
        tmp_path_factory.mktemp("exposed"),
        extra=f'trusted_proxies = ["192.0.2.0/24"]\n{FAST_ADDRESS_THROTTLE}',
    )
    yield live
    live.stop()


def guess_passwords(live: LiveProvider, client: Client, *, forwarded_for: str, guesses: int) -> list[int]:
    """One browser guessing passwords for made-up accounts; the status of every answer."""
    browser = Browser(OpenIdProvider(live.issuer))
    browser.http.headers["X-Forwarded-For"] = forwarded_for
    page = browser.authorize(client).page
    statuses = []
    for guess in range(guesses):
        page = browser.submit(page, username=f"nobody-{guess}", password="wrong password")
        statuses.append(page.status_code)
    return statuses


def test_through_a_trusted_proxy_one_clients_guessing_leaves_another_untouched(proxied: LiveProvider) -> None:
    client = register_client(proxied, "behind-proxy", redirect_uri="http://127.0.0.1/cb")
    assert guess_passwords(proxied, client, forwarded_for=ALICE, guesses=3) == [401, 401, 429]
    assert guess_passwords(proxied, client, forwarded_for=BOB, guesses=1) == [401]
    account = create_account(proxied, "bob")
    bob = Browser(OpenIdProvider(proxied.issuer))
    bob.http.headers["X-Forwarded-For"] = BOB
    _attempt, callback = bob.sign_in(client, account)
    assert "code" in callback
    addresses = {event.ip for event in proxied.audit_events("sign_in")}
    assert {ALICE, BOB} <= addresses
    assert "127.0.0.1" not in addresses, "the proxy's own address hides the clients"


def test_the_issuer_stays_the_configured_one_whatever_the_proxy_says(proxied: LiveProvider) -> None:
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-For": ALICE}
    browser = Browser(OpenIdProvider(proxied.issuer))
    browser.http.headers.update(forged)
    metadata = browser.http.get(f"{proxied.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == proxied.issuer
    assert all("evil.example" not in str(value) for value in metadata.values())


def test_an_untrusted_peer_cannot_spoof_its_address(exposed: LiveProvider) -> None:
    client = register_client(exposed, "exposed", redirect_uri="http://127.0.0.1/cb")
    statuses = [
        guess_passwords(exposed, client, forwarded_for=forged, guesses=1)[0]
        for forged in ("198.51.100.1", "198.51.100.2", "198.51.100.3")
    ]
    assert statuses == [401, 401, 429], "a new forged address each time still counts against the peer"
    assert {event.ip for event in exposed.audit_events("sign_in")} == {"127.0.0.1"}
