"""The one canonical form of an email address: one mailbox is one address on every path that stores,
counts or releases it (the account pages, the CLI, the email claim)."""

from __future__ import annotations

import idna

from idp.languages import N_
from idp.words import _

MAX_ADDRESS = 320  # RFC 3696 errata 1690: 64 + 1 + 255
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
EXPECTED_FORM = N_("Enter an email address like name@example.com.")


class AddressRejected(ValueError):
    """Not an address this provider accepts; the message is fit to show to the user or operator."""

    def __init__(self) -> None:
        super().__init__(_(EXPECTED_FORM))


def canonical_address(typed: str) -> str:
    """Lower case, and the domain in its IDNA ASCII form (RFC 5891, UTS 46) without the root's dot."""
    address = typed.strip()
    local, _, domain = address.rpartition("@")
    if (
        not local
        or len(address) > MAX_ADDRESS
        or len(local) > MAX_LOCAL_PART
        or "@" in local
        or any(character.isspace() or not character.isprintable() for character in address)
    ):
        raise AddressRejected
    try:
        ascii_domain = idna.encode(domain.removesuffix("."), uts46=True).decode("ascii")
    except idna.IDNAError:
        raise AddressRejected from None
    if "." not in ascii_domain or ascii_domain.endswith("."):
        raise AddressRejected
    return f"{local.lower()}@{ascii_domain}"
