"""Trusted reverse proxies: the real client address, scheme and host from Forwarded / X-Forwarded-*."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

SCHEMES = frozenset({"http", "https"})
HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
# RFC 7239 4: `for=192.0.2.1`, `for="[2001:db8::1]:4711"`, `for="192.0.2.1:8080"`
FORWARDED_NODE = re.compile(r'^"?\[?(?P<address>[0-9A-Fa-f:.]+?)\]?(:[0-9]+)?"?$')


@dataclass(frozen=True)
class Hop:
    """One proxy's report of the request it received (one element of a Forwarded header)."""

    client: str
    scheme: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class ClientOrigin:
    """Where the request really came from, and how its client addressed us."""

    address: str
    scheme: str | None
    host: str | None


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs as written in `[server] trusted_proxies`; a bare address is a /32 (or /128)."""
    return tuple(ipaddress.ip_network(cidr, strict=True) for cidr in cidrs)


def resolve_client(
    *, peer: str, headers: Mapping[str, str], trusted_proxies: Sequence[Network]
) -> ClientOrigin:
    """The right-most address not a trusted proxy's wins (RFC 7239 7.4); headers from others are ignored."""
    if not _is_trusted(peer, trusted_proxies):
        return ClientOrigin(address=peer, scheme=None, host=None)
    hops = _hops(headers)
    address = peer
    for hop in reversed(hops):
        if _address(hop.client) is None:
            break  # "unknown" or an obfuscated name: nothing further left can be told apart
        address = hop.client
        if not _is_trusted(address, trusted_proxies):
            break
    nearest = hops[-1] if hops else Hop(client=peer)
    scheme = nearest.scheme.lower() if nearest.scheme else None
    return ClientOrigin(
        address=str(_address(address)),
        scheme=scheme if scheme in SCHEMES else None,
        host=nearest.host if nearest.host and HOST.match(nearest.host) else None,
    )


def _hops(headers: Mapping[str, str]) -> list[Hop]:
    """Forwarded (RFC 7239) when present, else the X-Forwarded-* trio; the last hop is the nearest proxy."""
    forwarded = headers.get("Forwarded")
    if forwarded:
        return [_forwarded_element(element) for element in forwarded.split(",")]
    clients = [part.strip() for part in headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if not clients:
        return []
    scheme = _last(headers.get("X-Forwarded-Proto", ""))
    host = _last(headers.get("X-Forwarded-Host", ""))
    nearest = Hop(client=clients[-1], scheme=scheme, host=host)
    return [Hop(client=client) for client in clients[:-1]] + [nearest]


def _forwarded_element(element: str) -> Hop:
    pairs = dict(
        (name.strip().lower(), value.strip().strip('"'))
        for name, _, value in (pair.partition("=") for pair in element.split(";"))
    )
    found = FORWARDED_NODE.match(pairs.get("for", ""))
    return Hop(
        client=found.group("address") if found else "", scheme=pairs.get("proto"), host=pairs.get("host")
    )


def _last(listed: str) -> str | None:
    parts = [part.strip() for part in listed.split(",") if part.strip()]
    return parts[-1] if parts else None


def _address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(value: str, trusted_proxies: Sequence[Network]) -> bool:
    address = _address(value)
    return address is not None and any(address in network for network in trusted_proxies)


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR, scheme and Host as the client used them, when a trusted proxy says."""

    def __init__(self, app: WsgiApp, *, trusted_proxies: Sequence[Network]) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.trusted_proxies:
            origin = resolve_client(
                peer=environ.get("REMOTE_ADDR", ""),
                headers={
                    "Forwarded": environ.get("HTTP_FORWARDED", ""),
                    "X-Forwarded-For": environ.get("HTTP_X_FORWARDED_FOR", ""),
                    "X-Forwarded-Proto": environ.get("HTTP_X_FORWARDED_PROTO", ""),
                    "X-Forwarded-Host": environ.get("HTTP_X_FORWARDED_HOST", ""),
                },
                trusted_proxies=self.trusted_proxies,
            )
            environ["REMOTE_ADDR"] = origin.address
            if origin.scheme:
                environ["wsgi.url_scheme"] = origin.scheme
            if origin.host:
                environ["HTTP_HOST"] = origin.host
        return self.app(environ, start_response)
