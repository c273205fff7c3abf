"""One mailbox, one address: the canonical form every path stores, counts and releases."""

from __future__ import annotations

import pytest

from idp.email_address import EXPECTED_FORM, AddressRejected, canonical_address

SAME_MAILBOX = [
    pytest.param("alice@example.com", "alice@example.com", id="an address already canonical is kept"),
    pytest.param("Alice@Example.COM", "alice@example.com", id="case does not make another address"),
    pytest.param("alice@example.com.", "alice@example.com", id="the root's trailing dot is dropped"),
    pytest.param("  alice@example.com\n", "alice@example.com", id="spaces around it are not part of it"),
    pytest.param("alice@Bücher.Example", "alice@xn--bcher-kva.example", id="a unicode domain is IDNA"),
    pytest.param("alice@XN--BCHER-KVA.example.", "alice@xn--bcher-kva.example", id="so is its ASCII form"),
    pytest.param("alice@straße.de", "alice@xn--strae-oqa.de", id="IDNA2008, not transitional: ß stays"),
    pytest.param("Ünïcode.Local@example.com", "ünïcode.local@example.com", id="a unicode local part"),
    pytest.param("a+tag@sub.example.org", "a+tag@sub.example.org", id="tags and subdomains are kept"),
]


@pytest.mark.parametrize(("typed", "canonical"), SAME_MAILBOX)
def test_one_mailbox_has_one_canonical_address(typed: str, canonical: str) -> None:
    assert canonical_address(typed) == canonical
    assert canonical_address(canonical) == canonical


NOT_AN_ADDRESS = [
    pytest.param("", id="fails because it is empty"),
    pytest.param("alice", id="fails because it has no @"),
    pytest.param("@example.com", id="fails because the local part is empty"),
    pytest.param("alice@", id="fails because the domain is empty"),
    pytest.param("alice@localhost", id="fails because the domain has no dot"),
    pytest.param("alice@example.com..", id="fails because of an empty label after the dot"),
    pytest.param("al ice@example.com", id="fails because of a space inside"),
    pytest.param("alice@exa\x00mple.com", id="fails because of a control character"),
    pytest.param("a@b@example.com", id="fails because of a second @"),
    pytest.param("alice@exa_mple.com", id="fails because IDNA forbids an underscore in a domain"),
    pytest.param(f"{'a' * 65}@example.com", id="fails because the local part is over 64 characters"),
    pytest.param(f"alice@{'a' * 64}.com", id="fails because a label is over 63 characters"),
    pytest.param(f"alice@{'a.' * 160}com", id="fails because the address is over 320 characters"),
]


@pytest.mark.parametrize("typed", NOT_AN_ADDRESS)
def test_what_is_not_an_address_is_rejected_with_the_expected_form(typed: str) -> None:
    with pytest.raises(AddressRejected, match=EXPECTED_FORM):
        canonical_address(typed)
