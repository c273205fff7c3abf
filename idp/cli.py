"""idp init | serve | demo | users ... | clients ... | keys ...: every error is one line and exit code 2."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.exc import IntegrityError, OperationalError

from idp.auth.passwords import Passwords
from idp.auth.policy import AssurancePolicy
from idp.auth.throttle import Throttle, account_subject
from idp.config import CONFIG_ENV, ConfigError, Settings, load_settings
from idp.oidc.clients import GRANT_TYPES, ClientRegistrationError, register_client
from idp.oidc.keys import ALGORITHMS, KeyRing, KeyringError, ensure_keys, generate_key, retire_key
from idp.secrets import SecretsMissing, ensure_secrets
from idp.store.database import Database
from idp.store.durable import DurableStore, audit_event
from idp.store.ephemeral import open_ephemeral_store
from idp.store.tables import User


class UsageError(Exception):
    """A command that cannot be carried out; its message is printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        args.handler(settings, args)
    except (ConfigError, UsageError, KeyringError, SecretsMissing, ClientRegistrationError) as error:
        print(f"idp: {error}", file=sys.stderr)
        return 2
    except OperationalError as error:
        print(f"idp: cannot reach the database: {str(error.orig).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


# -- init, serve, demo ---------------------------------------------------------------------------


def cmd_init(settings: Settings, _args: argparse.Namespace) -> None:
    initialize(settings, report=print)


def initialize(settings: Settings, *, report: Callable[[str], object]) -> None:
    """Idempotent: schema at the newest revision, one key per algorithm, the symmetric secrets."""
    keys_dir = Path(settings.keys.directory)
    Path(settings.instance_dir).mkdir(parents=True, exist_ok=True)
    Database(settings.database_url).migrate()
    for kid in ensure_keys(keys_dir):
        report(f"created signing key {kid}")
    for name in ensure_secrets(keys_dir):
        report(f"created {keys_dir / name}")
    report(f"ready: database {settings.database_url.split('@')[-1]}, keys in {keys_dir}")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from idp.serve import serve

    serve(
        settings,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        workers=args.workers or settings.server.workers,
        engine=args.engine or settings.server.engine,
        config_path=args.config or os.environ.get(CONFIG_ENV),
    )


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from idp.demo import PortsBusy, run_demo

    initialize(settings, report=print)
    try:
        run_demo(settings, config_path=args.config or os.environ.get(CONFIG_ENV))
    except PortsBusy as error:
        raise UsageError(str(error)) from None


# -- users ---------------------------------------------------------------------------------------


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    if len(password) < settings.passwords.min_length:
        raise UsageError(f"the password must have at least {settings.passwords.min_length} characters")
    user = User(
        id=str(uuid.uuid4()),
        username=args.username,
        email=args.email,
        password_hash=Passwords(settings.passwords).hash(password),
        disabled=False,
        created_at=int(time.time()),
    )
    with _store(settings) as store:
        if store.users.by_username(args.username) is not None:
            raise UsageError(f"a user named {args.username!r} already exists")
        store.users.add(user)
        store.audit.record(audit_event("user_created", "success", at=int(time.time()), user_id=user.id))
    print(f"created user {args.username} ({user.id})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password; pass --password-stdin and pipe it in")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UsageError("the passwords do not match")
    return first


def cmd_users_list(settings: Settings, _args: argparse.Namespace) -> None:
    with _store(settings) as store:
        for user in store.users.all():
            factors = ", ".join(sorted({f.kind for f in store.factors.of_user(user.id)})) or "none"
            state = "disabled" if user.disabled else "active"
            print(f"{user.username}\t{user.email or '-'}\t{state}\tfactors: {factors}")


def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> None:
    with _store(settings) as store:
        user = _user(store, args.username)
        user.disabled = True
        store.audit.record(audit_event("user_disabled", "success", at=int(time.time()), user_id=user.id))
    print(f"disabled {args.username}")


def cmd_users_reset_mfa(settings: Settings, args: argparse.Namespace) -> None:
    with _store(settings) as store:
        user = _user(store, args.username)
        removed = store.factors.remove_all(user.id)
        store.audit.record(
            audit_event(
                "mfa_reset", "success", at=int(time.time()), user_id=user.id, detail={"removed": removed}
            )
        )
    print(f"removed {removed} factor(s) of {args.username}; they enrol again at their next sign-in")


def cmd_users_unlock(settings: Settings, args: argparse.Namespace) -> None:
    """Clear an account's password back-off and lock (after 100 failures it needs this or a passkey)."""
    with _store(settings) as store:
        user = _user(store, args.username)
        ephemeral = open_ephemeral_store(settings.redis.url, Path(settings.instance_dir))
        Throttle(ephemeral=ephemeral, settings=settings.throttle).unlock(account_subject(user.username))
        store.audit.record(audit_event("account_unlocked", "success", at=int(time.time()), user_id=user.id))
    print(f"unlocked {args.username}")


def _user(store: DurableStore, username: str) -> User:
    user = store.users.by_username(username)
    if user is None:
        raise UsageError(f"no user named {username!r}")
    return user


# -- clients -------------------------------------------------------------------------------------


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> None:
    policy = AssurancePolicy.from_settings(settings)
    unknown = [value for value in args.default_acr_value if policy.resolve(value) is None]
    if unknown:
        raise UsageError(f"unknown acr value(s) {unknown}; configured: {policy.acr_values_supported}")
    created = register_client(
        name=args.name,
        redirect_uris=args.redirect_uri,
        public=args.public,
        grant_types=args.grant_type,
        scope=" ".join(args.scope) if args.scope else "openid profile email",
        post_logout_redirect_uris=args.post_logout_redirect_uri,
        id_token_signed_response_alg=args.id_token_alg,
        default_acr_values=args.default_acr_value,
        default_max_age=args.default_max_age,
        third_party=args.third_party,
    )
    with _store(settings) as store:
        store.clients.add(created.client)
    result = {"client_id": created.client.client_id, "client_secret": created.secret}
    if args.json:
        print(json.dumps({key: value for key, value in result.items() if value is not None}))
        return
    print(f"client_id:     {created.client.client_id}")
    if created.secret:
        print(f"client_secret: {created.secret}   (shown once; only its hash is stored)")


def cmd_clients_list(settings: Settings, _args: argparse.Namespace) -> None:
    with _store(settings) as store:
        for client in store.clients.all():
            kind = "public" if client.secret_hash is None else "confidential"
            kind += ", third-party" if client.third_party else ""
            print(f"{client.client_id}\t{client.name}\t{kind}\t{' '.join(client.grant_types)}")


# -- keys ----------------------------------------------------------------------------------------


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> None:
    for alg in args.alg or ALGORITHMS:
        print(f"new active {alg} key {generate_key(Path(settings.keys.directory), alg)}; restart to use it")


def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> None:
    retire_key(Path(settings.keys.directory), args.kid)
    print(f"retired {args.kid}; restart to drop it from the JWKS")


def cmd_keys_list(settings: Settings, _args: argparse.Namespace) -> None:
    ring = KeyRing.load(Path(settings.keys.directory))
    for key in ring.keys:
        active = " (active)" if ring.signing_key(str(key.alg)).kid == key.kid else ""
        print(f"{key.kid}\t{key.alg}{active}")


# -- plumbing ------------------------------------------------------------------------------------


class _store:
    """A unit of work for one command, with integrity errors told as usage errors."""

    def __init__(self, settings: Settings) -> None:
        self._database = Database(settings.database_url)
        self._unit = self._database.unit_of_work()

    def __enter__(self) -> DurableStore:
        return DurableStore.over(self._unit.__enter__())

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        try:
            self._unit.__exit__(kind, error, tb)  # type: ignore[arg-type]
        except IntegrityError as failure:
            raise UsageError(f"refused by the database: {str(failure.orig).splitlines()[0]}") from failure
        finally:
            self._database.engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idp", description="OpenID Connect provider with mandatory MFA")
    parser.add_argument(
        "--config", help=f"TOML settings file (default: ${CONFIG_ENV}, else built-in defaults)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("init", help="create the schema, signing keys and secrets (idempotent)").set_defaults(
        handler=cmd_init
    )
    serve = commands.add_parser("serve", help="run the provider with a production WSGI server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--engine", choices=["gunicorn", "granian"])
    serve.set_defaults(handler=cmd_serve)
    commands.add_parser(
        "demo", help="init, create a demo user and client, run the provider and a demo app"
    ).set_defaults(handler=cmd_demo)

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = users.add_parser("create", help="create a user (password from stdin or a prompt)")
    create.add_argument("username")
    create.add_argument("--email")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(handler=cmd_users_create)
    users.add_parser("list", help="list users").set_defaults(handler=cmd_users_list)
    disable = users.add_parser("disable", help="disable a user")
    disable.add_argument("username")
    disable.set_defaults(handler=cmd_users_disable)
    unlock = users.add_parser("unlock", help="clear a user's password back-off and lock")
    unlock.add_argument("username")
    unlock.set_defaults(handler=cmd_users_unlock)
    reset = users.add_parser("reset-mfa", help="remove a user's second factors (they enrol again)")
    reset.add_argument("username")
    reset.set_defaults(handler=cmd_users_reset_mfa)

    clients = commands.add_parser("clients", help="manage relying parties").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    client_create = clients.add_parser("create", help="register a client; prints its id and secret once")
    client_create.add_argument("--name", required=True)
    client_create.add_argument("--redirect-uri", action="append", default=[])
    client_create.add_argument("--post-logout-redirect-uri", action="append", default=[])
    client_create.add_argument("--public", action="store_true", help="no secret; PKCE required")
    client_create.add_argument("--grant-type", action="append", default=[], choices=GRANT_TYPES)
    client_create.add_argument("--scope", action="append", default=[], help="allowed scope (repeat)")
    client_create.add_argument("--id-token-alg", default="RS256", choices=["RS256", "ES256"])
    client_create.add_argument(
        "--default-acr-value",
        action="append",
        default=[],
        help="acr asked for when a request names none (repeat)",
    )
    client_create.add_argument(
        "--default-max-age", type=int, help="max_age applied to every request (seconds)"
    )
    client_create.add_argument(
        "--third-party",
        action="store_true",
        help="an application run by someone else: each user allows it the requested scopes once "
        "(remembered per user; they can remove it on their account page)",
    )
    client_create.add_argument("--json", action="store_true", help="print the result as JSON")
    client_create.set_defaults(handler=cmd_clients_create)
    clients.add_parser("list", help="list clients").set_defaults(handler=cmd_clients_list)

    keys = commands.add_parser("keys", help="manage signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    rotate = keys.add_parser("rotate", help="add a new active key (per algorithm); old keys stay published")
    rotate.add_argument("--alg", action="append", choices=ALGORITHMS)
    rotate.set_defaults(handler=cmd_keys_rotate)
    retire = keys.add_parser("retire", help="remove a key from the JWKS")
    retire.add_argument("kid")
    retire.set_defaults(handler=cmd_keys_retire)
    keys.add_parser("list", help="list keys").set_defaults(handler=cmd_keys_list)
    return parser
