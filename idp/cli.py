"""idp init | serve | demo | config ... | users ... | clients ... | keys ...: errors exit with code 2."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

from idp.auth.reset_links import ResetLinks
from idp.config import CONFIG_ENV, ConfigError, Settings, load_settings
from idp.config_check import describe_settings, verify_smtp, verify_stores
from idp.email_address import AddressRejected, canonical_address
from idp.management import clients as client_ops
from idp.management import keys as key_ops
from idp.management import users as user_ops
from idp.management.context import CLI, Management, ManagementError
from idp.management.logout import CommandLineLogout
from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS
from idp.oidc.clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    REQUEST_OBJECT_ALGORITHMS,
    ClientRegistrationError,
    LogoutChannel,
)
from idp.oidc.keys import ALGORITHMS, KeyringError, ensure_keys
from idp.secrets import DATA_KEYS, DataKeyRotation, SecretsMissing, ensure_secrets
from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.ephemeral import open_ephemeral_store
from idp.store.tables import User


class UsageError(Exception):
    """A command that cannot be carried out; its message is printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    # The CLI tells each problem once, in one line: the stores' own log records (an outage) stay out of
    # its output. `idp serve` workers log as configured in idp/wsgi.py.
    logging.getLogger("idp").addHandler(logging.NullHandler())
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        args.handler(settings, args)
    except (
        ConfigError,
        UsageError,
        KeyringError,
        SecretsMissing,
        ClientRegistrationError,
        ManagementError,
    ) as error:
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


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    """The schema at the newest revision; instances starting at once take turns (idp/store/database.py)."""
    database = Database(settings.database_url)
    try:
        database.migrate()
        print(f"database schema at revision {database.revision()}")
    finally:
        database.engine.dispose()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from idp.serve import serve

    if args.migrate:
        cmd_migrate(settings, args)
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
    with _management(settings) as management:
        user = user_ops.create_user(
            management,
            username=args.username,
            password=password,
            email=email,
            email_verified=args.email_verified,
            admin=args.admin,
        )
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
    with _management(settings) as management:
        for user in management.store.users.all():
            factors = ", ".join(sorted({f.kind for f in user_ops.factors_of(management, user)})) or "none"
            state = "disabled" if user.disabled else "active"
            role = "administrator" if user.is_admin else "user"
            print(f"{user.username}\t{user.email or '-'}\t{state}\tfactors: {factors}\t{role}")


def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> None:
    _on_user(settings, args.username, lambda m, user: user_ops.set_disabled(m, user, disabled=True))
    print(f"disabled {args.username}; their sessions ended")


def cmd_users_enable(settings: Settings, args: argparse.Namespace) -> None:
    _on_user(settings, args.username, lambda m, user: user_ops.set_disabled(m, user, disabled=False))
    print(f"enabled {args.username}")


def cmd_users_delete(settings: Settings, args: argparse.Namespace) -> None:
    _on_user(settings, args.username, user_ops.delete_user)
    print(f"deleted {args.username}")


def cmd_users_promote(settings: Settings, args: argparse.Namespace) -> None:
    """Make a user an administrator: their next sign-in enrols an attested key if they hold none."""
    _on_user(settings, args.username, lambda m, user: user_ops.set_admin(m, user, admin=True))
    print(f"{args.username} is an administrator")


def cmd_users_demote(settings: Settings, args: argparse.Namespace) -> None:
    _on_user(settings, args.username, lambda m, user: user_ops.set_admin(m, user, admin=False))
    print(f"{args.username} is no longer an administrator")


def cmd_users_reset_mfa(settings: Settings, args: argparse.Namespace) -> None:
    removed = _on_user(settings, args.username, user_ops.reset_mfa)
    print(f"removed {removed} factor(s) of {args.username}; they enrol again at their next sign-in")


def cmd_users_set_password(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    _on_user(
        settings,
        args.username,
        lambda m, user: user_ops.set_password(m, user, password, temporary=args.temporary),
    )
    kind = "a one-time password" if args.temporary else "the password"
    print(f"set {kind} of {args.username}; their sessions ended")


def cmd_users_unlock(settings: Settings, args: argparse.Namespace) -> None:
    """Clear an account's password back-off and lock (after 100 failures it needs this or a passkey)."""
    _on_user(settings, args.username, user_ops.unlock)
    print(f"unlocked {args.username}")


Result = TypeVar("Result")


def _on_user(settings: Settings, username: str, operation: Callable[[Management, User], Result]) -> Result:
    with _management(settings) as management:
        return operation(management, user_ops.user_named(management, username))


def cmd_users_reset_link(settings: Settings, args: argparse.Namespace) -> None:
    """Print a one-time password reset link for the user to open; they still prove a second factor."""
    lifetime = settings.account.reset_link_lifetime

    def issue(management: Management, user: User) -> str:
        ephemeral = open_ephemeral_store(settings.redis.url, Path(settings.instance_dir))
        token = ResetLinks(ephemeral=ephemeral, lifetime=lifetime).issue(user_id=user.id)
        management.record(
            "password_reset", user_id=user.id, detail={"step": "link issued by an administrator"}
        )
        return token

    token = _on_user(settings, args.username, issue)
    print(f"{settings.issuer}/password/reset/{token}")
    print(
        f"works once, for {lifetime // 60} minutes; {args.username} also proves a second factor",
        file=sys.stderr,
    )


# -- clients -------------------------------------------------------------------------------------


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        created = client_ops.create_client(
            management,
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
            backchannel_logout=_logout_channel(
                args.backchannel_logout_uri, args.backchannel_logout_session_required
            ),
            frontchannel_logout=_logout_channel(
                args.frontchannel_logout_uri, args.frontchannel_logout_session_required
            ),
            dpop_bound_access_tokens=args.require_dpop,
        )
    _print_secret(created.client.client_id, created.secret, as_json=args.json)


def _print_secret(client_id: str, secret: str | None, *, as_json: bool) -> None:
    if as_json:
        result = {"client_id": client_id, "client_secret": secret}
        print(json.dumps({key: value for key, value in result.items() if value is not None}))
        return
    print(f"client_id:     {client_id}")
    if secret:
        print(f"client_secret: {secret}   (shown once; only its hash is stored)")


def _logout_channel(uri: str | None, session_required: bool) -> LogoutChannel | None:
    if uri is None:
        if session_required:
            raise UsageError("--*-logout-session-required needs its --*-logout-uri")
        return None
    return LogoutChannel(uri=uri, session_required=session_required)


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
    with _management(settings) as management:
        for client in client_ops.all_clients(management):
            kind = "public" if client.token_endpoint_auth_method == "none" else "confidential"
            kind += ", third-party" if client.third_party else ""
            kind += ", DPoP required" if client.dpop_bound_access_tokens else ""
            method = client.token_endpoint_auth_method
            redirects = " ".join(client.redirect_uris) or "-"
            print(
                f"{client.client_id}\t{client.name}\t{kind}\t{method}\t{' '.join(client.grant_types)}"
                f"\tscope: {client.scope or '-'}\tredirect: {redirects}"
            )


def cmd_clients_show(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        client = client_ops.client_with_id(management, args.client_id)
        shown = {"client_id": client.client_id, **client_ops.registration_of(client)}
    print(json.dumps(shown, indent=2))


def cmd_clients_update(settings: Settings, args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("name", args.name),
            ("redirect_uris", args.redirect_uri),
            ("post_logout_redirect_uris", args.post_logout_redirect_uri),
            ("grant_types", args.grant_type),
            ("scope", " ".join(args.scope) if args.scope else None),
            ("default_acr_values", args.default_acr_value),
            ("default_max_age", args.default_max_age),
        )
        if value is not None
    }
    if not changes:
        raise UsageError("nothing to change: give at least one option (see idp clients update --help)")
    with _management(settings) as management:
        client_ops.update_client(management, client_ops.client_with_id(management, args.client_id), **changes)
    print(f"updated {args.client_id}: {', '.join(sorted(changes))}")


def cmd_clients_rotate_secret(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        secret = client_ops.rotate_secret(management, client_ops.client_with_id(management, args.client_id))
    _print_secret(args.client_id, secret, as_json=args.json)


def cmd_clients_delete(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        client_ops.delete_client(management, client_ops.client_with_id(management, args.client_id))
    print(f"deleted {args.client_id}")


# -- keys ----------------------------------------------------------------------------------------


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        kids = key_ops.rotate_keys(management, tuple(args.alg or ALGORITHMS))
    for kid, alg in zip(kids, args.alg or ALGORITHMS, strict=True):
        print(f"new active {alg} key {kid}; restart to use it")


def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> None:
    with _management(settings) as management:
        key_ops.retire(management, args.kid)
    print(f"retired {args.kid}; restart to drop it from the JWKS")


def cmd_keys_rotate_data_key(settings: Settings, _args: argparse.Namespace) -> None:
    """A new data key: every TOTP secret encrypted again with it in one transaction, then data.keys
    saved with it first (the old keys kept after it); nothing changes when a secret cannot be opened."""
    rotation = DataKeyRotation(Path(settings.keys.directory))
    with _store(settings) as store:
        count = store.factors.reseal_secrets(rotation.reseal)
        rotation.save()
    print(f"new data key in {Path(settings.keys.directory) / DATA_KEYS}; {count} secret(s) encrypted with it")


def cmd_keys_list(settings: Settings, _args: argparse.Namespace) -> None:
    for key in key_ops.list_keys(Path(settings.keys.directory)):
        print(f"{key.kid}\t{key.alg}{' (active)' if key.active else ''}")


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


@contextmanager
def _management(settings: Settings) -> Iterator[Management]:
    """One command's operations, in one unit of work, audited as done from the command line."""
    with _store(settings) as store:
        ephemeral = open_ephemeral_store(settings.redis.url, Path(settings.instance_dir))
        logout = CommandLineLogout(settings, store=store, ephemeral=ephemeral)
        yield Management(store=store, ephemeral=ephemeral, settings=settings, actor=CLI, tell_clients=logout)
    logout.deliver()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idp", description="OpenID Connect provider with mandatory MFA")
    parser.add_argument(
        "--config", help=f"TOML settings file (default: ${CONFIG_ENV}, else built-in defaults)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("init", help="create the schema, signing keys and secrets (idempotent)").set_defaults(
        handler=cmd_init
    )
    commands.add_parser(
        "migrate", help="bring the database schema to the newest revision (safe to run from every instance)"
    ).set_defaults(handler=cmd_migrate)
    serve = commands.add_parser("serve", help="run the provider with a production WSGI server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--engine", choices=["gunicorn", "granian"])
    serve.add_argument(
        "--migrate", action="store_true", help="run `idp migrate` first (instances take turns)"
    )
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
        ("enable", cmd_users_enable, "enable a disabled user"),
        ("delete", cmd_users_delete, "delete a user, their factors, sessions and refresh tokens"),
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
    set_password = users.add_parser("set-password", help="set a user's password (ends their sessions)")
    set_password.add_argument("username")
    set_password.add_argument("--password-stdin", action="store_true", help="read it from standard input")
    set_password.add_argument(
        "--temporary", action="store_true", help="for one sign-in: the user chooses their own right after it"
    )
    set_password.set_defaults(handler=cmd_users_set_password)
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
    client_create.add_argument(
        "--grant-type",
        action="append",
        default=[],
        choices=GRANT_TYPES,
        help="repeat; urn:ietf:params:oauth:grant-type:device_code: a command-line tool or device whose "
        "user approves it at /device (RFC 8628), with no redirect URI",
    )
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
    client_create.add_argument(
        "--backchannel-logout-uri",
        metavar="URL",
        help="where the provider POSTs a signed logout_token when a browser session the client "
        "received tokens in ends (https, or http on localhost)",
    )
    client_create.add_argument(
        "--backchannel-logout-session-required",
        action="store_true",
        help="the client needs the session id (sid) in every logout_token",
    )
    client_create.add_argument(
        "--frontchannel-logout-uri",
        metavar="URL",
        help="a page the provider's sign-out page loads in a hidden iframe (https, or http on localhost)",
    )
    client_create.add_argument(
        "--frontchannel-logout-session-required",
        action="store_true",
        help="add iss and sid to the front-channel logout URI",
    )
    client_create.add_argument(
        "--require-dpop",
        action="store_true",
        help="refuse its token requests without a DPoP proof: every token it gets is bound to its key "
        "(RFC 9449, dpop_bound_access_tokens)",
    )
    client_create.add_argument("--json", action="store_true", help="print the result as JSON")
    client_create.set_defaults(handler=cmd_clients_create)
    clients.add_parser(
        "list", help="list clients: id, name, kind, auth method, grants, scope, redirect URIs"
    ).set_defaults(handler=cmd_clients_list)
    for name, handler, text in (
        ("show", cmd_clients_show, "print a client's registration as JSON"),
        ("delete", cmd_clients_delete, "delete a client, its consents and refresh tokens"),
    ):
        chosen = clients.add_parser(name, help=text)
        chosen.add_argument("client_id")
        chosen.set_defaults(handler=handler)
    update = clients.add_parser("update", help="change a client's registration (each option replaces)")
    update.add_argument("client_id")
    update.add_argument("--name")
    for option in ("--redirect-uri", "--post-logout-redirect-uri", "--scope", "--default-acr-value"):
        update.add_argument(option, action="append", help="repeat for several; replaces the registered ones")
    update.add_argument("--grant-type", action="append", choices=GRANT_TYPES)
    update.add_argument("--default-max-age", type=int)
    update.set_defaults(handler=cmd_clients_update)
    rotate_secret = clients.add_parser("rotate-secret", help="a new client secret, printed once")
    rotate_secret.add_argument("client_id")
    rotate_secret.add_argument("--json", action="store_true", help="print the result as JSON")
    rotate_secret.set_defaults(handler=cmd_clients_rotate_secret)

    keys = commands.add_parser("keys", help="manage signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    rotate = keys.add_parser("rotate", help="add a new active key (per algorithm); old keys stay published")
    rotate.add_argument("--alg", action="append", choices=ALGORITHMS)
    rotate.set_defaults(handler=cmd_keys_rotate)
    retire = keys.add_parser("retire", help="remove a key from the JWKS")
    retire.add_argument("kid", help="the key id (one beginning with - goes after --: keys retire -- -Ab...)")
    retire.set_defaults(handler=cmd_keys_retire)
    keys.add_parser("list", help="list keys").set_defaults(handler=cmd_keys_list)
    keys.add_parser(
        "rotate-data-key",
        help="encrypt every TOTP secret again with a new data key (the old keys stay to decrypt)",
    ).set_defaults(handler=cmd_keys_rotate_data_key)
    return parser
