"""idp init | serve | demo | config ... | users ... | clients ... | keys ...: errors exit with code 2."""

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
from types import TracebackType
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from idp.auth.passwords import Passwords
from idp.auth.policy import AssurancePolicy
from idp.auth.reset_links import ResetLinks
from idp.auth.throttle import Throttle, account_subject
from idp.config import CONFIG_ENV, ConfigError, Settings, load_settings
from idp.config_check import describe_settings, verify_smtp, verify_stores
from idp.email_address import AddressRejected, canonical_address
from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS
from idp.oidc.clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    REQUEST_OBJECT_ALGORITHMS,
    ClientRegistrationError,
    register_client,
)
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
    problems = verify_stores(settings)
    if problems:
        raise UsageError("; ".join(problems))
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


# -- config --------------------------------------------------------------------------------------


def cmd_config_show(settings: Settings, _args: argparse.Namespace) -> None:
    for line in describe_settings(settings):
        print(line)


def cmd_config_check(settings: Settings, _args: argparse.Namespace) -> None:
    """Valid settings (else main reports the first problem), then every connection: one line per failure."""
    problems = verify_stores(settings) + verify_smtp(settings)
    for problem in problems:
        print(f"idp: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(2)
    print("configuration valid; the database, the ephemeral store and mail answer")


# -- users ---------------------------------------------------------------------------------------


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> None:
    email = _email_option(args.email, verified=args.email_verified)
    password = _read_password(args.password_stdin)
    if len(password) < settings.passwords.min_length:
        raise UsageError(f"the password must have at least {settings.passwords.min_length} characters")
    user = User(
        id=str(uuid.uuid4()),
        username=args.username,
        email=email,
        email_verified=args.email_verified,
        password_hash=Passwords(settings.passwords).hash(password),
        disabled=False,
        created_at=int(time.time()),
        is_admin=args.admin,
    )
    with _store(settings) as store:
        if store.users.by_username(args.username) is not None:
            raise UsageError(f"a user named {args.username!r} already exists")
        if email is not None:
            _admit_address(store, email, user_id=user.id, limit=settings.factors.email.max_users_per_email)
        store.users.add(user)
        store.audit.record(audit_event("user_created", "success", at=int(time.time()), user_id=user.id))
    role = "administrator" if args.admin else "user"
    print(f"created {role} {args.username} ({user.id})")


def _email_option(email: str | None, *, verified: bool) -> str | None:
    """--email in its canonical form (the one the account pages and the claims use)."""
    if email is None:
        if verified:
            raise UsageError("--email-verified needs --email")
        return None
    try:
        return canonical_address(email)
    except AddressRejected:
        raise UsageError(f"--email {email!r} is not an email address like name@example.com") from None


def _admit_address(store: DurableStore, email: str, *, user_id: str, limit: int) -> None:
    """Refuse an address that `limit` accounts hold already; the lock lasts until the user is stored."""
    store.addresses.lock(email)
    if store.addresses.holders(email).full_for(user_id, limit=limit):
        raise UsageError(
            f"{email} is already used by {limit} accounts, the most allowed "
            "([factors.email] max_users_per_email)"
        )


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


def cmd_users_promote(settings: Settings, args: argparse.Namespace) -> None:
    """Make a user an administrator: their next sign-in enrols an attested key if they hold none."""
    _set_admin(settings, args.username, admin=True)
    print(f"{args.username} is an administrator")


def cmd_users_demote(settings: Settings, args: argparse.Namespace) -> None:
    _set_admin(settings, args.username, admin=False)
    print(f"{args.username} is no longer an administrator")


def _set_admin(settings: Settings, username: str, *, admin: bool) -> None:
    with _store(settings) as store:
        user = _user(store, username)
        user.is_admin = admin
        event = "user_promoted" if admin else "user_demoted"
        store.audit.record(audit_event(event, "success", at=int(time.time()), user_id=user.id))


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


def cmd_users_reset_link(settings: Settings, args: argparse.Namespace) -> None:
    """Print a one-time password reset link for the user to open; they still prove a second factor."""
    with _store(settings) as store:
        user = _user(store, args.username)
        ephemeral = open_ephemeral_store(settings.redis.url, Path(settings.instance_dir))
        lifetime = settings.account.reset_link_lifetime
        token = ResetLinks(ephemeral=ephemeral, lifetime=lifetime).issue(user_id=user.id)
        detail = {"step": "link issued by an administrator"}
        store.audit.record(
            audit_event("password_reset", "success", at=int(time.time()), user_id=user.id, detail=detail)
        )
    print(f"{settings.issuer}/password/reset/{token}")
    print(
        f"works once, for {lifetime // 60} minutes; {args.username} also proves a second factor",
        file=sys.stderr,
    )


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
        introspect_audiences=args.introspect,
        token_endpoint_auth_method=args.token_endpoint_auth_method,
        jwks=_read_jwks(args.jwks_file) if args.jwks_file else None,
        jwks_uri=args.jwks_uri,
        request_object_signing_alg=args.request_object_signing_alg,
        require_pushed_authorization_requests=args.require_par,
        third_party=args.third_party,
    )
    with _store(settings) as store:
        unknown = [client_id for client_id in args.introspect if store.clients.get(client_id) is None]
        if unknown:
            raise UsageError(f"--introspect names no registered client: {unknown}")
        store.clients.add(created.client)
    result = {"client_id": created.client.client_id, "client_secret": created.secret}
    if args.json:
        print(json.dumps({key: value for key, value in result.items() if value is not None}))
        return
    print(f"client_id:     {created.client.client_id}")
    if created.secret:
        print(f"client_secret: {created.secret}   (shown once; only its hash is stored)")


def _read_jwks(path: str) -> dict[str, Any]:
    """The client's public keys from a JWKS file (RFC 7517 5); checked by register_client."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read --jwks-file {path}: {error.strerror}") from None
    except ValueError:
        raise UsageError(f"--jwks-file {path} is not JSON") from None
    if not isinstance(document, dict):
        raise UsageError(f'--jwks-file {path} is not a JWKS (a JSON object with "keys")')
    return document


def cmd_clients_list(settings: Settings, _args: argparse.Namespace) -> None:
    with _store(settings) as store:
        for client in store.clients.all():
            kind = "public" if client.token_endpoint_auth_method == "none" else "confidential"
            kind += ", third-party" if client.third_party else ""
            method = client.token_endpoint_auth_method
            print(f"{client.client_id}\t{client.name}\t{kind}\t{method}\t{' '.join(client.grant_types)}")


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

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._unit.__exit__(kind, error, tb)
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

    config = commands.add_parser("config", help="inspect the effective configuration").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    config.add_parser("show", help="print the effective settings, secrets masked").set_defaults(
        handler=cmd_config_show
    )
    config.add_parser("check", help="validate the settings and test the connections").set_defaults(
        handler=cmd_config_check
    )

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = users.add_parser("create", help="create a user (password from stdin or a prompt)")
    create.add_argument("username")
    create.add_argument(
        "--email",
        help="the user's email address; ID tokens say email_verified false until the user proves it "
        "on the account pages",
    )
    create.add_argument(
        "--email-verified",
        action="store_true",
        help="you vouch that the user controls --email: ID tokens say email_verified true",
    )
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--admin", action="store_true", help="an administrator (must enrol an attested key)")
    create.set_defaults(handler=cmd_users_create)
    for name, handler, text in (
        ("promote", cmd_users_promote, "make a user an administrator"),
        ("demote", cmd_users_demote, "take a user's administrator role away"),
    ):
        role = users.add_parser(name, help=text)
        role.add_argument("username")
        role.set_defaults(handler=handler)
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
    reset_link = users.add_parser("reset-link", help="print a one-time password reset link for a user")
    reset_link.add_argument("username")
    reset_link.set_defaults(handler=cmd_users_reset_link)

    clients = commands.add_parser("clients", help="manage relying parties").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    client_create = clients.add_parser("create", help="register a client; prints its id and secret once")
    client_create.add_argument("--name", required=True)
    client_create.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="https, http on localhost (http://127.0.0.1/cb or http://[::1]/cb match any port), or a "
        "native app's private-use scheme like com.example.app:/callback (repeat)",
    )
    client_create.add_argument("--post-logout-redirect-uri", action="append", default=[])
    client_create.add_argument("--public", action="store_true", help="no secret; PKCE required")
    client_create.add_argument("--grant-type", action="append", default=[], choices=GRANT_TYPES)
    client_create.add_argument(
        "--scope",
        action="append",
        default=[],
        help="allowed scope (repeat); offline_access lets refresh tokens outlive the user's session",
    )
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
        "--introspect",
        action="append",
        default=[],
        metavar="CLIENT_ID",
        help="a resource server: may introspect access tokens issued to CLIENT_ID (repeat)",
    )
    client_create.add_argument(
        "--token-endpoint-auth-method",
        choices=AUTH_METHODS,
        help="how it authenticates (default client_secret_basic; a client with a secret may send it by "
        "Basic or in the form); private_key_jwt mints no secret and needs --jwks-file or --jwks-uri",
    )
    client_create.add_argument(
        "--jwks-file",
        metavar="PATH",
        help="its public keys (a JWKS file), for private_key_jwt and request objects",
    )
    client_create.add_argument(
        "--jwks-uri", metavar="URL", help="where its public keys are published (https; fetched and cached)"
    )
    client_create.add_argument(
        "--request-object-signing-alg",
        choices=REQUEST_OBJECT_ALGORITHMS,
        help="the only alg its request objects may use; 'none' opts in to unsigned ones "
        f"(default: any of {', '.join(CLIENT_JWT_ALGORITHMS)})",
    )
    client_create.add_argument(
        "--require-par",
        action="store_true",
        help="accept its authorization requests only when pushed first (RFC 9126 PAR)",
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
