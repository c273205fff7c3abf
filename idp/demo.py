"""`idp demo`: the provider on its embedded defaults beside a demo relying party, ready to click through."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from idp.auth.passwords import Passwords
from idp.config import CONFIG_ENV, Settings
from idp.oidc.clients import LogoutChannel, register_client
from idp.package_data import data_folder
from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.tables import User

DEMO_RP = data_folder("examples") / "demo_rp.py"
DEMO_API = data_folder("examples") / "demo_api.py"
PAYMENT_SCHEMA = data_folder("examples") / "payment.schema.json"
# The demo's transfer is a payment the user approves with a passkey (RFC 9396 authorization details):
# declared for the provider through the environment unless the operator's settings declare it.
PAYMENT_TYPE = {
    "IDP_AUTHORIZATION_DETAILS__PAYMENT__SCHEMA": str(PAYMENT_SCHEMA),
    "IDP_AUTHORIZATION_DETAILS__PAYMENT__TITLE": "Pay {amount} {currency} to {creditorName}",
    "IDP_AUTHORIZATION_DETAILS__PAYMENT__ACR": "phr",
    "IDP_AUTHORIZATION_DETAILS__PAYMENT__ONE_TIME": "true",
}
DEMO_PORT = 8001
DEMO_API_PORT = 8002
DEMO_USER = "demo"


class PortsBusy(Exception):
    """A port the demo needs is taken, most often by an earlier `idp demo` still running."""


def ensure_demo_records(settings: Settings) -> dict[str, str]:
    """A demo user (no second factor yet: the first sign-in enrols TOTP), a public demo client, and a
    public demo CLI client of the device flow (RFC 8628, examples/demo_cli.py)."""
    record = Path(settings.instance_dir) / "demo.json"
    details: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    if "cli_client_id" in details:
        return details
    database = Database(settings.database_url)
    with database.unit_of_work() as session:
        store = DurableStore.over(session)
        if not details:
            details = _add_demo_user_and_app(settings, store)
        cli = register_client(
            name="Demo CLI",
            redirect_uris=[],
            public=True,
            grant_types=[DEVICE_CODE_GRANT_TYPE],
            scope="openid profile",
        ).client
        store.clients.add(cli)
    database.engine.dispose()
    details["cli_client_id"] = cli.client_id
    record.write_text(json.dumps(details))
    record.chmod(0o600)
    return details


def _add_demo_user_and_app(settings: Settings, store: DurableStore) -> dict[str, str]:
    password = secrets.token_urlsafe(9)
    base = f"http://localhost:{DEMO_PORT}"
    client = register_client(
        name="Demo console app",
        redirect_uris=[f"{base}/callback"],
        public=True,
        grant_types=[],
        scope="openid profile email",
        post_logout_redirect_uris=[f"{base}/"],
        backchannel_logout=LogoutChannel(f"{base}/backchannel-logout", session_required=True),
    ).client
    if store.users.by_username(DEMO_USER) is None:
        store.users.add(
            User(
                id=str(uuid.uuid4()),
                username=DEMO_USER,
                email="demo@example.com",
                password_hash=Passwords(settings.passwords).hash(password),
                disabled=False,
                created_at=int(time.time()),
            )
        )
    store.clients.add(client)
    return {"username": DEMO_USER, "password": password, "client_id": client.client_id}


def run_demo(settings: Settings, *, config_path: str | None) -> None:
    """Run the provider, the demo app and the demo API until Ctrl-C, SIGTERM or SIGHUP, then stop all
    three: a demo left running would answer the next one's browser with its own, stale client."""
    busy = [port for port in (settings.server.port, DEMO_PORT, DEMO_API_PORT) if _taken(port)]
    if busy:
        raise PortsBusy(
            f"port{'s' if len(busy) > 1 else ''} {', '.join(map(str, busy))} already in use "
            "(is an earlier 'idp demo' still running?)"
        )
    details = ensure_demo_records(settings)
    environment = {
        **os.environ,
        "DEMO_ISSUER": settings.issuer,
        "DEMO_CLIENT_ID": details["client_id"],
        "DEMO_CLI_CLIENT_ID": details["cli_client_id"],
        "DEMO_PORT": str(DEMO_PORT),
        "DEMO_API_PORT": str(DEMO_API_PORT),
        "DEMO_API": f"http://localhost:{DEMO_API_PORT}",
        **({} if "payment" in settings.authorization_details else PAYMENT_TYPE),
    }
    if config_path:
        environment[CONFIG_ENV] = config_path
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _exit)
    provider = subprocess.Popen([sys.executable, "-m", "idp", "serve"], env=environment)
    relying_party = subprocess.Popen([sys.executable, str(DEMO_RP)], env=environment)  # noqa: S603
    api = subprocess.Popen([sys.executable, str(DEMO_API)], env=environment)  # noqa: S603
    print(
        f"\n  Provider:  {settings.issuer}\n"
        f"  Demo app:  http://localhost:{DEMO_PORT}   <- open this in a browser\n"
        f"  Sign in as '{details['username']}' with password '{details['password']}';\n"
        "  the first sign-in sets up an authenticator app (TOTP). Ctrl-C stops all three.\n"
        f"  Command line: python examples/demo_cli.py --client-id {details['cli_client_id']}\n",
        flush=True,
    )
    try:
        provider.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in (api, relying_party, provider):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _exit(signum: int, _frame: object) -> None:
    """Leave through run_demo's `finally`, which stops the three processes."""
    raise SystemExit(128 + signum)
