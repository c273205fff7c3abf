"""Passkeys (WebAuthn L3 7.1 registration, 7.2 authentication) answered by a software authenticator:
the ceremonies alone, then enrolment on the account page and sign-in with a passkey alone or as the
second factor, through the app's JSON endpoints as webauthn.js calls them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fido2.utils import websafe_decode, websafe_encode
from flask import Flask
from sqlalchemy import select
from support.app import Browser, add_client, add_user, code_from, csrf_token, make_app
from support.attestation import Attester, CertificateAuthority
from support.soft_authenticator import ORIGIN, Credential, InvalidStateError, SoftAuthenticator
from support.step_up import RelyingParty as Client
from support.step_up import (
    age_proofs,
    is_password_page,
    passkey_options,
    pending_id,
    registration_options,
    send_assertion,
)
from werkzeug.test import TestResponse

from idp.auth.attestation import TrustAnchors
from idp.auth.policy import Amr, passkey_amr
from idp.auth.webauthn import (
    MAX_RESPONSE_BYTES,
    Assertion,
    Ceremonies,
    CeremonyFailed,
    NewCredential,
    RelyingParty,
    StoredCredential,
    credential_id_of,
)
from idp.store.ephemeral import EmbeddedStore, EphemeralStore
from idp.store.tables import AuditEvent, Factor, User
from idp.web import services

PASSWORD = "a long enough password"
USER_HANDLE = b"user-1"
NOT_VERIFIED = "The passkey could not be verified."
MALFORMED = "The browser sent a malformed response."
CLONED = "This security key looks cloned and was refused."
CLONE_REASON = "sign count went backwards"


# -- the ceremonies ---------------------------------------------------------------------------------


def ceremonies_on(ephemeral: EphemeralStore) -> Ceremonies:
    relying_party = RelyingParty(id="localhost", name="idp", origin=ORIGIN)
    return Ceremonies(
        relying_party=relying_party,
        ephemeral=ephemeral,
        challenge_ttl=60,
        trust=TrustAnchors(),
        request_attestation=False,
    )


@pytest.fixture
def ceremonies(tmp_path: Path) -> Ceremonies:
    return ceremonies_on(EmbeddedStore(tmp_path / "ephemeral.sqlite3"))


def stored(new: NewCredential) -> StoredCredential:
    return StoredCredential(
        credential_id=new.credential_id,
        public_key=new.public_key,
        sign_count=new.sign_count,
        transports=new.transports,
    )


def register(ceremonies: Ceremonies, authenticator: SoftAuthenticator, **knobs: Any) -> NewCredential:
    challenge = ceremonies.begin_registration(user_handle=USER_HANDLE, username="alice", existing=[])
    response = authenticator.create(challenge.options_json, **knobs)
    return ceremonies.finish_registration(ceremony_id=challenge.ceremony_id, response=json.dumps(response))


def authenticate(
    ceremonies: Ceremonies,
    authenticator: SoftAuthenticator,
    credential: StoredCredential,
    *,
    require_user_verification: bool = False,
    **knobs: Any,
) -> Assertion:
    challenge = ceremonies.begin_authentication(
        allowed=[credential], require_user_verification=require_user_verification
    )
    return ceremonies.finish_authentication(
        ceremony_id=challenge.ceremony_id,
        response=json.dumps(authenticator.get(challenge.options_json, **knobs)),
        credential=credential,
        require_user_verification=require_user_verification,
    )


@pytest.mark.parametrize(
    ("backup_eligible", "user_verified"),
    [(True, True), (True, False), (False, True), (False, False)],
    ids=[
        "synced passkey, user verified",
        "synced passkey, user present only",
        "device-bound key, user verified",
        "device-bound key, user present only",
    ],
)
def test_a_registered_credential_signs_in_and_reports_what_the_authenticator_did(
    ceremonies: Ceremonies, backup_eligible: bool, user_verified: bool
) -> None:
    authenticator = SoftAuthenticator(backup_eligible=backup_eligible, user_verified=user_verified)
    new = register(ceremonies, authenticator)
    assert new.credential_id == authenticator.credentials[0].id and new.sign_count == 0
    assert (new.backup_eligible, new.backed_up) == (backup_eligible, backup_eligible)
    assert new.user_verified is user_verified
    assert new.transports == (("hybrid", "internal") if backup_eligible else ("usb",))
    assert new.aaguid == "00000000-0000-0000-0000-000000000000"
    first = authenticate(ceremonies, authenticator, stored(new))
    assert first == Assertion(
        credential_id=new.credential_id,
        new_sign_count=1,
        user_verified=user_verified,
        backed_up=backup_eligible,
    )
    second = authenticate(ceremonies, authenticator, replace(stored(new), sign_count=first.new_sign_count))
    assert second.new_sign_count == 2


def test_registration_options_name_the_relying_party_the_user_and_the_keys_to_exclude(
    ceremonies: Ceremonies,
) -> None:
    existing = stored(register(ceremonies, SoftAuthenticator()))
    challenge = ceremonies.begin_registration(user_handle=USER_HANDLE, username="alice", existing=[existing])
    options = json.loads(challenge.options_json)
    assert options["rp"] == {"id": "localhost", "name": "idp"}
    assert websafe_decode(options["user"]["id"]) == USER_HANDLE and options["user"]["name"] == "alice"
    assert [websafe_decode(item["id"]) for item in options["excludeCredentials"]] == [existing.credential_id]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"


def test_user_verification_when_required_refuses_a_key_that_only_saw_presence(
    ceremonies: Ceremonies,
) -> None:
    authenticator = SoftAuthenticator(user_verified=False)
    credential = stored(register(ceremonies, authenticator))
    with pytest.raises(CeremonyFailed, match=NOT_VERIFIED) as refused:
        authenticate(ceremonies, authenticator, credential, require_user_verification=True)
    assert "User verification is required" in refused.value.reason
    verified = authenticate(
        ceremonies, authenticator, credential, require_user_verification=True, user_verified=True
    )
    assert verified.user_verified


def test_a_challenge_answers_one_ceremony_once(ephemeral_store: EphemeralStore) -> None:
    ceremonies = ceremonies_on(ephemeral_store)
    authenticator = SoftAuthenticator()
    credential = stored(register(ceremonies, authenticator))
    challenge = ceremonies.begin_authentication(allowed=[credential], require_user_verification=False)
    response = json.dumps(authenticator.get(challenge.options_json))
    finish = {
        "ceremony_id": challenge.ceremony_id,
        "response": response,
        "credential": credential,
        "require_user_verification": False,
    }
    ceremonies.finish_authentication(**finish)
    with pytest.raises(CeremonyFailed, match="expired or was already used") as replayed:
        ceremonies.finish_authentication(**finish)
    assert replayed.value.reason == "no challenge"


@dataclass(frozen=True)
class Purpose:
    """What the challenge was made for (begin) and what it is offered to (finish)."""

    begin: Callable[[Ceremonies, StoredCredential], str]
    finish: Callable[[Ceremonies, str, SoftAuthenticator, StoredCredential], object]


def _begin_registration(ceremonies: Ceremonies, _credential: StoredCredential) -> str:
    return ceremonies.begin_registration(user_handle=USER_HANDLE, username="alice", existing=[]).ceremony_id


def _begin_authentication(*, uv: bool) -> Callable[[Ceremonies, StoredCredential], str]:
    def begin(ceremonies: Ceremonies, credential: StoredCredential) -> str:
        return ceremonies.begin_authentication(allowed=[credential], require_user_verification=uv).ceremony_id

    return begin


def _finish_registration(
    ceremonies: Ceremonies, ceremony_id: str, authenticator: SoftAuthenticator, _credential: StoredCredential
) -> object:
    options = ceremonies.begin_registration(user_handle=USER_HANDLE, username="bob", existing=[])
    response = json.dumps(authenticator.create(options.options_json))
    return ceremonies.finish_registration(ceremony_id=ceremony_id, response=response)


def _finish_authentication(*, uv: bool) -> Callable[..., object]:
    def finish(
        ceremonies: Ceremonies, ceremony_id: str, key: SoftAuthenticator, credential: StoredCredential
    ) -> object:
        options = ceremonies.begin_authentication(allowed=[credential], require_user_verification=uv)
        return ceremonies.finish_authentication(
            ceremony_id=ceremony_id,
            response=json.dumps(key.get(options.options_json)),
            credential=credential,
            require_user_verification=uv,
        )

    return finish


@pytest.mark.parametrize(
    "purpose",
    [
        Purpose(_begin_registration, _finish_authentication(uv=False)),
        Purpose(_begin_authentication(uv=False), _finish_registration),
        Purpose(_begin_authentication(uv=False), _finish_authentication(uv=True)),
        Purpose(_begin_authentication(uv=True), _finish_authentication(uv=False)),
    ],
    ids=[
        "a registration challenge cannot sign in",
        "a sign-in challenge cannot register a key",
        "options that did not demand user verification cannot finish a passkey-alone sign-in",
        "a passkey-alone challenge cannot finish a second-factor step",
    ],
)
def test_a_challenge_is_refused_for_another_purpose(ceremonies: Ceremonies, purpose: Purpose) -> None:
    authenticator = SoftAuthenticator()
    credential = stored(register(ceremonies, authenticator))
    ceremony_id = purpose.begin(ceremonies, credential)
    with pytest.raises(CeremonyFailed, match="does not match this step") as refused:
        purpose.finish(ceremonies, ceremony_id, authenticator, credential)
    assert refused.value.reason == "challenge purpose"


@pytest.mark.parametrize(
    ("knobs", "message", "reason"),
    [
        ({"origin": "https://login.example.net"}, NOT_VERIFIED, "Unexpected client data origin"),
        ({"rp_id": "example.net"}, NOT_VERIFIED, "Unexpected RP ID hash"),
        ({"client_data_type": "webauthn.get"}, NOT_VERIFIED, "Unexpected client data type"),
    ],
    ids=[
        "fails because a page on another origin asked for the key",
        "fails because the key scoped it to another RP ID",
        "fails because the client data is an assertion's",
    ],
)
def test_refused_registrations(
    ceremonies: Ceremonies, knobs: dict[str, Any], message: str, reason: str
) -> None:
    with pytest.raises(CeremonyFailed, match=message) as refused:
        register(ceremonies, SoftAuthenticator(), **knobs)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("stored_count", "knobs", "message", "reason"),
    [
        (0, {"origin": "https://login.example.net"}, NOT_VERIFIED, "Unexpected client data origin"),
        (0, {"rp_id": "example.net"}, NOT_VERIFIED, "Unexpected RP ID hash"),
        (0, {"client_data_type": "webauthn.create"}, NOT_VERIFIED, "Unexpected client data type"),
        (5, {"sign_count": 3}, CLONED, CLONE_REASON),
        (5, {"sign_count": 5}, CLONED, CLONE_REASON),
        (5, {"sign_count": 0}, CLONED, CLONE_REASON),
    ],
    ids=[
        "fails because a page on another origin asked for the assertion",
        "fails because the assertion is for another RP ID",
        "fails because the client data is a registration's",
        "fails because the sign count went backwards (a clone)",
        "fails because the sign count repeated (a clone)",
        "fails because a key that counted stopped counting (a clone)",
    ],
)
def test_refused_assertions(
    ceremonies: Ceremonies, stored_count: int, knobs: dict[str, Any], message: str, reason: str
) -> None:
    authenticator = SoftAuthenticator()
    credential = replace(stored(register(ceremonies, authenticator)), sign_count=stored_count)
    with pytest.raises(CeremonyFailed, match=message) as refused:
        authenticate(ceremonies, authenticator, credential, **knobs)
    assert reason in refused.value.reason


def test_a_key_without_a_counter_signs_in_with_zero_every_time(ceremonies: Ceremonies) -> None:
    """WebAuthn 6.1.1: an authenticator that does not count always reports 0; that is not a clone."""
    authenticator = SoftAuthenticator()
    credential = stored(register(ceremonies, authenticator))
    for _ in range(2):
        assert authenticate(ceremonies, authenticator, credential, sign_count=0).new_sign_count == 0


OVERSIZED = json.dumps({"id": "A" * MAX_RESPONSE_BYTES, "type": "public-key"})
MALFORMED_RESPONSES = [
    pytest.param("not json", "malformed response", id="fails because it is not JSON"),
    pytest.param("[]", "malformed response", id="fails because it is not a JSON object"),
    pytest.param("{}", "malformed response", id="fails because it names no credential"),
    pytest.param(
        '{"id": "AAAA", "rawId": "AAAA"}', "malformed response", id="fails because it answers nothing"
    ),
    pytest.param(OVERSIZED, "response too large", id="fails because it is larger than any real response"),
]


@pytest.mark.parametrize(("response", "reason"), MALFORMED_RESPONSES)
def test_malformed_registration_responses(ceremonies: Ceremonies, response: str, reason: str) -> None:
    challenge = ceremonies.begin_registration(user_handle=USER_HANDLE, username="alice", existing=[])
    with pytest.raises(CeremonyFailed, match=MALFORMED) as refused:
        ceremonies.finish_registration(ceremony_id=challenge.ceremony_id, response=response)
    assert refused.value.reason == reason


@pytest.mark.parametrize(("response", "reason"), MALFORMED_RESPONSES)
def test_malformed_assertions(ceremonies: Ceremonies, response: str, reason: str) -> None:
    authenticator = SoftAuthenticator()
    credential = stored(register(ceremonies, authenticator))
    with pytest.raises(CeremonyFailed, match=MALFORMED) as before_lookup:
        credential_id_of(response)
    assert before_lookup.value.reason == reason
    challenge = ceremonies.begin_authentication(allowed=[credential], require_user_verification=False)
    with pytest.raises(CeremonyFailed, match=MALFORMED) as refused:
        ceremonies.finish_authentication(
            ceremony_id=challenge.ceremony_id,
            response=response,
            credential=credential,
            require_user_verification=False,
        )
    assert refused.value.reason == reason


def test_only_known_transports_are_kept_and_odd_ones_do_not_break_registration(
    ceremonies: Ceremonies,
) -> None:
    authenticator = SoftAuthenticator()
    challenge = ceremonies.begin_registration(user_handle=USER_HANDLE, username="alice", existing=[])
    response = authenticator.create(challenge.options_json)
    response["response"]["transports"] = ["usb", "carrier-pigeon", {"not": "a string"}, ["nfc"]]
    new = ceremonies.finish_registration(ceremony_id=challenge.ceremony_id, response=json.dumps(response))
    assert new.transports == ("usb",)


@pytest.mark.parametrize(
    ("attested", "user_verified", "amr"),
    [
        (True, True, {Amr.HWK, Amr.USER}),
        (True, False, {Amr.HWK}),
        (False, True, {Amr.SWK, Amr.USER}),
        (False, False, {Amr.SWK}),
    ],
    ids=[
        "attested security key that verified the user",
        "attested security key that only saw presence",
        "any other passkey that verified the user",
        "any other passkey that only saw presence",
    ],
)
def test_amr_for_a_webauthn_assertion(attested: bool, user_verified: bool, amr: set[Amr]) -> None:
    assert passkey_amr(attested=attested, user_verified=user_verified) == amr


# -- through the app --------------------------------------------------------------------------------


# The vendor whose root the provider below trusts, and one of its key models.
VENDOR = CertificateAuthority("Trusted Vendor")
KEY_MODEL = Attester(VENDOR)


@dataclass(frozen=True)
class PasskeyKind:
    """A synced passkey, a device-bound key or an attested security key, and what the provider makes of it."""

    backup_eligible: bool
    attester: Attester | None
    label: str
    amr: str
    acr: str  # the strongest level a sign-in with it alone reaches

    def authenticator(self, **knobs: Any) -> SoftAuthenticator:
        return SoftAuthenticator(backup_eligible=self.backup_eligible, attester=self.attester, **knobs)


SYNCED = PasskeyKind(backup_eligible=True, attester=None, label="Passkey", amr="swk", acr="phr")
DEVICE_BOUND = PasskeyKind(backup_eligible=False, attester=None, label="Passkey", amr="swk", acr="phr")
ATTESTED = PasskeyKind(
    backup_eligible=False, attester=KEY_MODEL, label="Attested security key", amr="hwk", acr="phrh"
)
KINDS = [
    pytest.param(SYNCED, id="synced passkey"),
    pytest.param(DEVICE_BOUND, id="device-bound but unattested key: flags prove nothing"),
    pytest.param(ATTESTED, id="attested security key"),
]


class Provider(Client):
    """The in-process provider with its one client, and what it stored."""

    def rows(self, model: type) -> list[Any]:
        with self.app.app_context(), services().database.unit_of_work() as session:
            return list(session.scalars(select(model)))

    def failures(self, event: str) -> list[AuditEvent]:
        return [e for e in self.rows(AuditEvent) if e.event == event and e.outcome == "failure"]


def provider_on(app: Flask) -> Provider:
    return Provider(app, *add_client(app))


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    """A provider trusting VENDOR's attestation root."""
    roots = tmp_path / "attestation-roots"
    VENDOR.write(roots)
    return provider_on(make_app(tmp_path, webauthn={"attestation_roots": str(roots)}))


def signed_in(provider: Provider, username: str) -> Browser:
    """A new user who signed in with a password and enrolled TOTP on the way (a fresh MFA sign-in)."""
    add_user(provider.app, username, PASSWORD)
    browser = provider.browser()
    done, _secret = browser.sign_in_with_enrolment(username, PASSWORD)
    code_from(done)
    return browser


def add_passkey(browser: Browser, authenticator: SoftAuthenticator, name: str = "Laptop") -> TestResponse:
    options, csrf = registration_options(browser)
    credential = authenticator.create(options)
    return browser.post_json("/account/passkeys", {"credential": credential, "name": name}, csrf=csrf)


def with_passkey(provider: Provider, username: str, authenticator: SoftAuthenticator) -> Browser:
    browser = signed_in(provider, username)
    added = add_passkey(browser, authenticator)
    assert added.status_code == 200, added.get_data(as_text=True)
    return browser


def id_token_after(provider: Provider, browser: Browser, answer: TestResponse) -> dict[str, Any]:
    """Follow the verify call's redirect to the client, redeem the code, and read the ID token."""
    assert answer.status_code == 200, answer.get_data(as_text=True)
    done = browser.follow(browser.client.get(answer.get_json()["redirect"]))
    tokens = browser.redeem(code_from(done), provider.secret)
    return browser.id_token_claims(tokens["id_token"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_passkey_added_on_the_account_page_is_listed_by_kind(provider: Provider, kind: PasskeyKind) -> None:
    browser = signed_in(provider, "alice")
    added = add_passkey(browser, kind.authenticator(), name="Work laptop")
    assert added.status_code == 200
    account = browser.follow(browser.client.get(added.get_json()["redirect"]))
    assert account.request.path == "/account"
    assert "Work laptop" in account.text and kind.label in account.text
    enrolments = [
        (e.detail["kind"], e.outcome) for e in provider.rows(AuditEvent) if e.event == "factor_enrolment"
    ]
    assert enrolments == [("totp", "success"), ("recovery_code", "success"), ("webauthn", "success")]


def test_registration_options_exclude_the_credentials_already_registered(provider: Provider) -> None:
    authenticator = SoftAuthenticator()
    browser = with_passkey(provider, "alice", authenticator)
    options, _csrf = registration_options(browser)
    assert [item["id"] for item in options["excludeCredentials"]] == [
        websafe_encode(authenticator.credentials[0].id)
    ]
    with pytest.raises(InvalidStateError):
        authenticator.create(options)


def test_a_credential_registered_to_one_account_is_refused_for_another(provider: Provider) -> None:
    alices_key = SoftAuthenticator()
    with_passkey(provider, "alice", alices_key)
    bob = signed_in(provider, "bob")
    options, csrf = registration_options(bob)
    reused = alices_key.create(options, reuse=alices_key.credentials[0])
    refused = bob.post_json("/account/passkeys", {"credential": reused, "name": "Not mine"}, csrf=csrf)
    assert refused.status_code == 400
    assert refused.get_json() == {"error": "This passkey is already registered."}
    assert "Not mine" not in bob.client.get("/account").text
    (failure,) = provider.failures("factor_enrolment")
    assert failure.detail == {"kind": "webauthn", "reason": "credential already registered"}
    assert len([f for f in provider.rows(Factor) if f.kind == "webauthn"]) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_passkey_alone_signs_in_with_user_verification(provider: Provider, kind: PasskeyKind) -> None:
    authenticator = kind.authenticator()
    with_passkey(provider, "alice", authenticator)
    browser = provider.browser()
    page = browser.authorize()
    assert is_password_page(page)
    options = passkey_options(browser, page)
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    claims = id_token_after(provider, browser, send_assertion(browser, page, authenticator.get(options)))
    assert claims["amr"] == [kind.amr, "user", "mfa"] and claims["acr"] == kind.acr
    (passkey,) = [f for f in provider.rows(Factor) if f.kind == "webauthn"]
    assert claims["sub"] == passkey.user_id
    assert passkey.data["sign_count"] == 1 and passkey.last_used_at is not None


def test_a_security_key_as_second_factor_needs_no_user_verification(provider: Provider) -> None:
    authenticator = ATTESTED.authenticator(user_verified=False)
    with_passkey(provider, "alice", authenticator)
    browser = provider.browser()
    factor_page = browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    assert factor_page.request.path.endswith("/factor")
    assert "Use your passkey or security key" in factor_page.text and 'name="code"' in factor_page.text
    options = passkey_options(browser, factor_page)
    assert [item["id"] for item in options["allowCredentials"]] == [
        websafe_encode(authenticator.credentials[0].id)
    ]
    assert options["userVerification"] == "preferred"
    answer = send_assertion(browser, factor_page, authenticator.get(options))
    claims = id_token_after(provider, browser, answer)
    assert claims["amr"] == ["pwd", "hwk", "mfa"] and claims["acr"] == "phrh"


Forge = Callable[[SoftAuthenticator, dict[str, Any], dict[str, Any]], dict[str, Any]]


def _replayed(_key: SoftAuthenticator, _options: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    return earlier


def _for_another_origin(key: SoftAuthenticator, options: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    return key.get(options, origin="https://login.example.net")


def _for_another_rp_id(key: SoftAuthenticator, options: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    return key.get(options, rp_id="example.net")


def _from_a_clone(key: SoftAuthenticator, options: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    """A copy of the key made before the earlier sign-in counts from where the original was then."""
    return key.get(options, sign_count=1)


@pytest.mark.parametrize(
    ("forge", "error", "reason"),
    [
        (_replayed, NOT_VERIFIED, "challenge was not expected challenge"),
        (_for_another_origin, NOT_VERIFIED, "Unexpected client data origin"),
        (_for_another_rp_id, NOT_VERIFIED, "Unexpected RP ID hash"),
        (_from_a_clone, CLONED, CLONE_REASON),
    ],
    ids=[
        "fails because the assertion is replayed from an earlier sign-in",
        "fails because a page on another origin asked for it",
        "fails because the key scoped it to another RP ID",
        "fails because a cloned authenticator repeats the sign count",
    ],
)
def test_a_refused_assertion_is_answered_in_json_and_audited(
    provider: Provider, forge: Forge, error: str, reason: str
) -> None:
    authenticator = SoftAuthenticator()
    with_passkey(provider, "alice", authenticator)
    first = provider.browser()
    first_page = first.authorize()
    earlier = authenticator.get(passkey_options(first, first_page))
    id_token_after(provider, first, send_assertion(first, first_page, earlier))

    browser = provider.browser()
    page = browser.authorize()
    refused = send_assertion(browser, page, forge(authenticator, passkey_options(browser, page), earlier))
    assert refused.status_code == 400 and refused.is_json
    assert refused.get_json() == {"error": error}
    (failure,) = provider.failures("sign_in")
    assert failure.detail["step"] == "webauthn" and reason in failure.detail["reason"]
    assert failure.client_id == provider.client_id
    assert is_password_page(browser.follow(browser.client.get(f"/authorize/resume/{pending_id(page)}")))


Answer = Callable[[SoftAuthenticator, dict[str, Any]], dict[str, Any]]


def _stranger(_key: SoftAuthenticator, options: dict[str, Any]) -> dict[str, Any]:
    stranger = SoftAuthenticator(credentials=[Credential.new(rp_id="localhost", user_handle=b"nobody")])
    return stranger.get(options)


def _claims_another_user(key: SoftAuthenticator, options: dict[str, Any]) -> dict[str, Any]:
    key.credentials[0].user_handle = b"someone else"
    return key.get(options)


@pytest.mark.parametrize(
    ("answer", "error", "reason"),
    [
        (_stranger, "This passkey is not registered here.", "unknown credential"),
        (_claims_another_user, "This passkey belongs to another account.", "user handle mismatch"),
    ],
    ids=[
        "fails because no account registered the key",
        "fails because the key's user handle names another account",
    ],
)
def test_a_passkey_alone_from_a_key_no_account_holds_is_refused(
    provider: Provider, answer: Answer, error: str, reason: str
) -> None:
    authenticator = SoftAuthenticator()
    with_passkey(provider, "alice", authenticator)
    browser = provider.browser()
    page = browser.authorize()
    refused = send_assertion(browser, page, answer(authenticator, passkey_options(browser, page)))
    assert refused.status_code == 400 and refused.get_json() == {"error": error}
    (failure,) = provider.failures("sign_in")
    assert failure.detail == {"step": "webauthn", "reason": reason} and failure.user_id is None


def test_a_second_factor_from_another_accounts_key_is_refused(provider: Provider) -> None:
    alices_key = SoftAuthenticator()
    with_passkey(provider, "alice", alices_key)
    with_passkey(provider, "bob", SoftAuthenticator())
    browser = provider.browser()
    factor_page = browser.submit(browser.authorize(), username="bob", password=PASSWORD)
    options = passkey_options(browser, factor_page)
    ignoring_the_allow_list = alices_key.get({**options, "allowCredentials": []})
    refused = send_assertion(browser, factor_page, ignoring_the_allow_list)
    assert refused.status_code == 400
    assert refused.get_json() == {"error": "This passkey belongs to another account."}
    (failure,) = provider.failures("sign_in")
    assert failure.detail == {"step": "webauthn", "reason": "credential of another user"}
    assert failure.user_id == next(user.id for user in provider.rows(User) if user.username == "bob")
    assert browser.client.get(f"/authorize/resume/{pending_id(factor_page)}").location.endswith("/factor")


@pytest.mark.parametrize(
    "url",
    [
        "/account/passkeys/options",
        "/account/passkeys",
        "/signin/{pending}/passkey/options",
        "/signin/{pending}/passkey",
    ],
    ids=[
        "fails because registration options were asked for without the page's token",
        "fails because a key was sent for registration without the page's token",
        "fails because sign-in options were asked for without the page's token",
        "fails because an assertion was sent without the page's token",
    ],
)
def test_the_passkey_endpoints_need_the_pages_csrf_token(provider: Provider, url: str) -> None:
    browser = signed_in(provider, "alice")
    page = browser.authorize(prompt="login")
    assert is_password_page(page)
    forged = browser.client.post(url.format(pending=pending_id(page)), json={"credential": {}})
    assert forged.status_code == 400 and isinstance(forged.get_json()["error"], str), "the endpoint's JSON"
    assert [f.kind for f in provider.rows(Factor) if f.kind != "recovery_code"] == ["totp"]


# -- enrolment needs a fresh MFA sign-in -------------------------------------------------------------


@pytest.fixture
def strict(tmp_path: Path) -> Provider:
    """Every change on the account pages asks for a second factor again."""
    return provider_on(make_app(tmp_path, account={"reauthentication_max_age": 0}))


def test_adding_a_passkey_to_an_older_session_steps_up_with_a_second_factor(strict: Provider) -> None:
    browser = signed_in(strict, "alice")
    step_up = browser.follow(browser.client.get("/account/passkeys/new"))
    assert step_up.status_code == 200 and step_up.request.path.endswith("/factor")
    assert 'name="code"' in step_up.text and not is_password_page(step_up)


def test_asking_for_registration_options_from_an_older_session_answers_401_with_the_step_up(
    strict: Provider,
) -> None:
    browser = signed_in(strict, "alice")
    csrf = csrf_token(browser.client.get("/account"))
    refused = browser.post_json("/account/passkeys/options", {}, csrf=csrf)
    assert refused.status_code == 401
    answer = refused.get_json()
    assert answer["error"] == "Confirm it is you first."
    assert answer["redirect"].startswith("/authorize/resume/")
    assert browser.follow(browser.client.get(answer["redirect"])).request.path.endswith("/factor")
    added = browser.post_json("/account/passkeys", {"credential": {}, "name": "x"}, csrf=csrf)
    assert added.status_code == 401 and "redirect" in added.get_json()
    assert [f.kind for f in strict.rows(Factor) if f.kind != "recovery_code"] == ["totp"]


def test_a_passkey_step_up_brings_the_user_back_to_add_another(provider: Provider) -> None:
    authenticator = SoftAuthenticator(backup_eligible=False)
    browser = with_passkey(provider, "alice", authenticator)
    age_proofs(browser, seconds=3600)
    step_up = browser.follow(browser.client.get("/account/passkeys/new"))
    assert step_up.request.path.endswith("/factor") and "Use your passkey or security key" in step_up.text
    answer = send_assertion(browser, step_up, authenticator.get(passkey_options(browser, step_up)))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    back = browser.follow(browser.client.get(answer.get_json()["redirect"]))
    assert back.status_code == 200 and back.request.path == "/account/passkeys/new"
    added = add_passkey(browser, SoftAuthenticator(), name="Phone")
    assert added.status_code == 200, added.get_data(as_text=True)


def test_a_session_begun_with_a_passkey_alone_steps_up_with_the_passkey_not_a_password(
    provider: Provider,
) -> None:
    authenticator = SoftAuthenticator()
    with_passkey(provider, "alice", authenticator)
    browser = provider.browser()
    page = browser.authorize()
    id_token_after(
        provider, browser, send_assertion(browser, page, authenticator.get(passkey_options(browser, page)))
    )
    age_proofs(browser, seconds=3600)
    step_up = browser.follow(browser.client.get("/account/passkeys/new"))
    assert not is_password_page(step_up), "the password page, where a password alone re-opens enrolment"
    assert step_up.request.path.endswith("/factor") and "Use your passkey or security key" in step_up.text
    answer = send_assertion(browser, step_up, authenticator.get(passkey_options(browser, step_up)))
    back = browser.follow(browser.client.get(answer.get_json()["redirect"]))
    assert back.request.path == "/account/passkeys/new"
