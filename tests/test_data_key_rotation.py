"""`idp keys rotate-data-key`: every TOTP secret encrypted again with a new data key in one transaction,
while the provider keeps running (its workers read the new data.keys without a restart); the old key
can then be retired. A secret that no key opens changes nothing."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, select, text
from support.live import CHECKOUT_IDP, provider_on_real_stores, write_config
from support.oidc_client import Browser, OpenIdProvider, create_account, register_client

from idp.config import load_settings
from idp.secrets import DATA_KEYS, SecretBox
from idp.store.database import Database
from idp.store.tables import Factor, FactorKind, User


def sealed_secrets(database_url: str) -> dict[str, bytes]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, secret FROM factors WHERE secret IS NOT NULL"))
            return {row.id: bytes(row.secret) for row in rows}
    finally:
        engine.dispose()


def test_rotation_reencrypts_every_totp_secret_and_sign_ins_go_on_without_a_restart(tmp_path: Path) -> None:
    with provider_on_real_stores(tmp_path, database_prefix="idp_data_key_") as live:
        client = register_client(live, "rotation")
        account = create_account(live, "rotation")
        _attempt, callback = Browser(OpenIdProvider(live.issuer)).sign_in(client, account)  # enrols TOTP
        assert callback["code"]
        keys_file = tmp_path / "keys" / DATA_KEYS
        (old_key,) = keys_file.read_bytes().split()
        (before,) = sealed_secrets(live.database_url).values()

        rotated = live.idp("keys", "rotate-data-key")

        assert rotated.returncode == 0, rotated.stderr
        assert "1 secret(s) encrypted with it" in rotated.stdout
        new_key, kept = keys_file.read_bytes().split()
        assert kept == old_key and new_key != old_key
        assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
        (after,) = sealed_secrets(live.database_url).values()
        assert Fernet(new_key).decrypt(after) == Fernet(old_key).decrypt(before)
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(after)

        _attempt, callback = Browser(OpenIdProvider(live.issuer)).sign_in(client, account)
        assert callback["code"], "the running provider opens the secret with the new key"

        keys_file.write_bytes(new_key + b"\n")  # the old key retired
        _attempt, callback = Browser(OpenIdProvider(live.issuer)).sign_in(client, account)
        assert callback["code"], "nothing needs the old key any more"


def test_a_secret_no_key_opens_fails_the_rotation_and_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000)
    init = subprocess.run([*CHECKOUT_IDP, "--config", str(config), "init"], capture_output=True, check=False)
    assert init.returncode == 0, init.stderr
    settings = load_settings(config)
    keys_file = tmp_path / "keys" / DATA_KEYS
    readable = SecretBox(keys_file.parent).seal(b"JBSWY3DPEHPK3PXP")
    unreadable = Fernet(Fernet.generate_key()).encrypt(b"sealed by a key since lost")
    database = Database(settings.database_url)
    with database.unit_of_work() as session:
        user = User(id=str(uuid.uuid4()), username="u", password_hash="x", disabled=False, created_at=1)
        session.add(user)
        session.flush()
        for number, secret in enumerate((readable, unreadable)):
            session.add(
                Factor(
                    id=str(uuid.uuid4()),
                    user_id=user.id,
                    kind=FactorKind.TOTP,
                    name=f"app {number}",
                    secret=secret,
                    created_at=int(time.time()) + number,
                )
            )
    keys_before = keys_file.read_bytes()

    rotated = subprocess.run(
        [*CHECKOUT_IDP, "--config", str(config), "keys", "rotate-data-key"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert rotated.returncode == 2
    assert rotated.stderr == f"idp: no key in {DATA_KEYS} opens a stored secret; nothing changed\n"
    assert keys_file.read_bytes() == keys_before
    with database.unit_of_work() as session:
        stored = set(session.scalars(select(Factor.secret)))
    database.engine.dispose()
    assert stored == {readable, unreadable}
