"""The `idp` command as an operator meets it: one-line errors with exit code 2, users, clients, keys."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support.app import Browser, add_client, code_from, make_app
from support.live import free_port, write_config

from idp.app import create_app
from idp.config import Settings, load_settings
from idp.demo import DEMO_API_PORT, DEMO_PORT
from idp.oidc.clients import register_client
from idp.store.database import Database
from idp.store.durable import DurableStore

PASSWORD = "a long enough password\n"
PRIVATE_USE_SCHEMES_ONLY = (
    "the scheme must be https, http for localhost, or a native app's private-use scheme"
)


def idp(config: Path | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "idp", *prefix, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path, port=8000)
    assert idp(path, "init").returncode == 0
    return path


def test_help_lists_every_command() -> None:
    shown = idp(None, "--help").stdout
    for command in ("init", "serve", "demo", "users", "clients", "keys"):
        assert command in shown


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('issuer = "http://x"\n[databse]\nurl = ""\n', "config error: databse: unknown key"),
        ('[database]\nurl = "nonsense://"\n', "config error: database.url: unsupported database 'nonsense'"),
        ("[passwords]\nmemory_cost = 10\n", "config error: passwords.memory_cost:"),
        ("issuer = \n", "not valid TOML"),
    ],
    ids=[
        "fails because of a typo in a key",
        "fails because the database URL is nonsense",
        "fails because argon2 memory is impossible",
        "fails because the file is not TOML",
    ],
)
def test_bad_config_stops_with_one_line_and_creates_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        f'instance_dir = "{tmp_path / "instance"}"\n{content}'.replace('issuer = "http://x"\n', "")
    )
    result = subprocess.run(
        [sys.executable, "-m", "idp", "--config", str(config), "init"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.toml"]


def test_init_is_idempotent(config: Path) -> None:
    again = idp(config, "init")
    assert again.returncode == 0 and "created" not in again.stdout


def test_user_lifecycle(config: Path) -> None:
    assert (
        idp(
            config, "users", "create", "alice", "--email", "a@example.com", "--password-stdin", stdin=PASSWORD
        ).returncode
        == 0
    )
    duplicate = idp(config, "users", "create", "alice", "--password-stdin", stdin=PASSWORD)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    short = idp(config, "users", "create", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert idp(config, "users", "disable", "alice").returncode == 0
    assert "alice\ta@example.com\tdisabled\tfactors: none" in idp(config, "users", "list").stdout
    missing = idp(config, "users", "reset-mfa", "nobody")
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr
    assert PASSWORD.strip() not in (duplicate.stderr + duplicate.stdout)


def test_password_without_terminal_or_stdin_flag_is_refused(config: Path) -> None:
    refused = idp(config, "users", "create", "carol", stdin="")
    assert refused.returncode == 2 and "--password-stdin" in refused.stderr


def create_user(config: Path, username: str, *options: str) -> subprocess.CompletedProcess[str]:
    return idp(config, "users", "create", username, *options, "--password-stdin", stdin=PASSWORD)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--email", "alice"], "idp: --email 'alice' is not an email address like name@example.com"),
        (
            ["--email", "alice@localhost"],
            "idp: --email 'alice@localhost' is not an email address like name@example.com",
        ),
        (["--email-verified"], "idp: --email-verified needs --email"),
    ],
    ids=[
        "fails because the address has no domain",
        "fails because the domain has no dot",
        "fails because there is no address to vouch for",
    ],
)
def test_user_creation_refusals(config: Path, options: list[str], message: str) -> None:
    refused = create_user(config, "alice", *options)
    assert (refused.returncode, refused.stderr) == (2, f"{message}\n")


@pytest.mark.parametrize(
    ("options", "email", "verified"),
    [
        (["--email", " Alice@Bücher.Example. "], "alice@xn--bcher-kva.example", False),
        (["--email", "alice@example.com", "--email-verified"], "alice@example.com", True),
    ],
    ids=["an address stored canonical, unverified", "an address the operator vouches for"],
)
def test_the_email_claim_says_whether_the_address_was_verified(
    config: Path, options: list[str], email: str, verified: bool
) -> None:
    assert create_user(config, "alice", *options).returncode == 0
    assert f"alice\t{email}\tactive" in idp(config, "users", "list").stdout
    app = create_app(load_settings(config))
    client_id, client_secret = add_client(app, scope="openid email")
    browser = Browser(app.test_client(), client_id)
    done, _secret = browser.sign_in_with_enrolment("alice", PASSWORD.strip(), scope="openid email")
    claims = browser.id_token_claims(browser.redeem(code_from(done), client_secret)["id_token"])
    assert (claims["email"], claims["email_verified"]) == (email, verified)


def test_an_address_goes_to_no_more_accounts_than_max_users_per_email(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000, extra="[factors.email]\nmax_users_per_email = 2\n")
    assert idp(config, "init").returncode == 0
    assert create_user(config, "alice", "--email", "shared@example.com").returncode == 0
    assert create_user(config, "bob", "--email", "SHARED@example.com.", "--email-verified").returncode == 0
    refused = create_user(config, "carol", "--email", "Shared@Example.Com")
    assert refused.returncode == 2
    assert refused.stderr == (
        "idp: shared@example.com is already used by 2 accounts, the most allowed "
        "([factors.email] max_users_per_email)\n"
    )
    assert create_user(config, "carol", "--email", "carol@example.com").returncode == 0
    listed = idp(config, "users", "list").stdout
    assert [line.split("\t")[:2] for line in listed.splitlines()] == [
        ["alice", "shared@example.com"],
        ["bob", "shared@example.com"],
        ["carol", "carol@example.com"],
    ]


def test_client_secret_is_shown_once_and_stored_hashed(config: Path) -> None:
    created = json.loads(
        idp(
            config,
            "clients",
            "create",
            "--name",
            "Console",
            "--redirect-uri",
            "https://console.example.com/cb",
            "--json",
        ).stdout
    )
    public = json.loads(
        idp(
            config,
            "clients",
            "create",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "http://localhost:3000/cb",
            "--json",
        ).stdout
    )
    assert created["client_secret"] and "client_secret" not in public
    listing = idp(config, "clients", "list").stdout
    assert created["client_id"] in listing and created["client_secret"] not in listing
    database = (config.parent / "instance" / "idp.sqlite3").read_bytes()
    assert created["client_secret"].encode() not in database


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "http://console.example.com/cb"], "plain http is allowed only for localhost"),
        (["--redirect-uri", "https://console.example.com/cb#frag"], "no fragment"),
        ([], "authorization_code needs at least one --redirect-uri"),
        (["--public", "--grant-type", "client_credentials"], "a public client cannot use client_credentials"),
        (["--redirect-uri", "javascript:alert(document.cookie)"], PRIVATE_USE_SCHEMES_ONLY),
        (["--redirect-uri", "data:text/html,<script>alert(1)</script>"], PRIVATE_USE_SCHEMES_ONLY),
        (["--redirect-uri", "file:///etc/passwd"], PRIVATE_USE_SCHEMES_ONLY),
        (["--redirect-uri", "myapp:/callback"], PRIVATE_USE_SCHEMES_ONLY),
        (["--redirect-uri", "com.example.app://callback"], "followed by a single slash and a path"),
        (
            [
                "--redirect-uri",
                "https://x.example/cb",
                "--scope",
                "offline_access",
                "--grant-type",
                "authorization_code",
            ],
            "the offline_access scope needs the refresh_token grant",
        ),
        (
            ["--grant-type", "client_credentials", "--introspect", "no-such-client"],
            "names no registered client",
        ),
        (
            ["--public", "--redirect-uri", "https://x.example/cb", "--introspect", "any"],
            "a public client cannot introspect",
        ),
    ],
    ids=[
        "fails because http is not localhost",
        "fails because of a fragment",
        "fails because there is no redirect URI",
        "fails because a public client has no secret",
        "fails because javascript: runs script",
        "fails because data: embeds a page",
        "fails because file: is neither web nor app",
        "fails because a private-use scheme must be a reversed domain name (RFC 8252 7.1)",
        "fails because a private-use scheme has no authority",
        "fails because offline_access without refresh tokens would be a lie",
        "fails because a resource server must serve a registered client",
        "fails because a public client cannot authenticate to introspect",
    ],
)
def test_client_registration_refusals(config: Path, args: list[str], message: str) -> None:
    grant = [] if "--grant-type" in args or args else ["--grant-type", "authorization_code"]
    refused = idp(config, "clients", "create", "--name", "X", *args, *grant)
    assert refused.returncode == 2 and message in refused.stderr


RSA_PUBLIC = RSAKey.generate_key(2048, auto_kid=True).as_dict(private=False)
CONSOLE = ["--redirect-uri", "https://console.example.com/cb"]


@pytest.mark.parametrize(
    ("args", "jwks", "message"),
    [
        (["--token-endpoint-auth-method", "private_key_jwt"], None, "private_key_jwt needs the client's"),
        (["--request-object-signing-alg", "PS256"], None, "signed request objects (PS256) need the client's"),
        (["--jwks-uri", "http://keys.example.com/jwks.json"], None, "plain http is allowed only for local"),
        (["--jwks-uri", "file:///etc/keys.json"], None, "must be an absolute http(s) URL"),
        (["--jwks-uri", "https://keys.example.com/jwks.json"], {"keys": [RSA_PUBLIC]}, "not both"),
        (["--public", "--token-endpoint-auth-method", "private_key_jwt"], {"keys": [RSA_PUBLIC]}, "public"),
        ([], {"keys": [RSAKey.generate_key(2048).as_dict(private=True)]}, "holds a private key"),
        ([], {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "holds a private key"),
        ([], {"keys": [{**RSA_PUBLIC, "use": "enc"}]}, "no RSA or EC signing key"),
        ([], {"keys": [{"kty": "RSA", "n": "AQAB"}]}, "malformed key"),
        ([], ["not", "a", "jwks"], "is not a JWKS"),
        ([], "{not json", "is not JSON"),
        (["--jwks-file", "/nonexistent/jwks.json"], None, "cannot read --jwks-file /nonexistent/jwks.json"),
    ],
    ids=[
        "fails because private_key_jwt needs keys",
        "fails because signed request objects need keys",
        "fails because a jwks_uri over http is not localhost",
        "fails because a jwks_uri is a file",
        "fails because keys are registered both inline and by URL",
        "fails because a public client has nothing to sign with",
        "fails because the JWKS holds a private RSA key",
        "fails because the JWKS holds a symmetric key",
        "fails because the JWKS has no signing key",
        "fails because the JWKS has a broken key",
        "fails because the file is not a JWKS object",
        "fails because the file is not JSON",
        "fails because the file does not exist",
    ],
)
def test_client_key_registration_refusals(
    config: Path, tmp_path: Path, args: list[str], jwks: object, message: str
) -> None:
    """Bad client keys stop registration with one line and exit code 2, and register nothing."""
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(jwks if isinstance(jwks, str) else json.dumps(jwks))
    file_args = ["--jwks-file", str(jwks_file)] if jwks is not None else []

    refused = idp(config, "clients", "create", "--name", "Keyed", *CONSOLE, *args, *file_args)

    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "Keyed" not in idp(config, "clients", "list").stdout


def test_a_private_key_jwt_client_gets_no_secret_and_keeps_its_rules(config: Path, tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [RSA_PUBLIC]}))
    created = idp(
        config,
        "clients",
        "create",
        "--name",
        "Bank",
        *CONSOLE,
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
        "--request-object-signing-alg",
        "PS256",
        "--require-par",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    client_id = json.loads(created.stdout)["client_id"]
    assert "client_secret" not in json.loads(created.stdout)

    database = Database(load_settings(config).database_url)
    with database.unit_of_work() as session:
        row = DurableStore.over(session).clients.get(client_id)
    database.engine.dispose()
    assert row is not None and row.token_endpoint_auth_method == "private_key_jwt"
    assert row.jwks == {"keys": [RSA_PUBLIC]} and row.jwks_uri is None
    assert row.request_object_signing_alg == "PS256" and row.require_pushed_authorization_requests
    assert f"{client_id}\tBank\tconfidential\tprivate_key_jwt" in idp(config, "clients", "list").stdout


def test_a_client_registered_with_require_dpop_keeps_the_rule(config: Path) -> None:
    created = idp(
        config, "clients", "create", "--name", "Ops CLI", "--public", *CONSOLE, "--require-dpop", "--json"
    )
    assert created.returncode == 0, created.stderr
    client_id = json.loads(created.stdout)["client_id"]
    database = Database(load_settings(config).database_url)
    with database.unit_of_work() as session:
        row = DurableStore.over(session).clients.get(client_id)
    database.engine.dispose()
    assert row is not None and row.dpop_bound_access_tokens
    assert f"{client_id}\tOps CLI\tpublic, DPoP required\tnone" in idp(config, "clients", "list").stdout


def test_rotated_key_signs_after_restart_and_the_old_one_stays_published(
    tmp_path: Path, config: Path
) -> None:
    settings = load_settings(config)
    old = set(_jwks(settings))
    rotated = idp(config, "keys", "rotate", "--alg", "ES256")
    assert rotated.returncode == 0
    new_kid = rotated.stdout.split()[4].rstrip(";")
    app = make_app(tmp_path, keys={"directory": settings.keys.directory})  # the restart
    published = app.test_client().get("/jwks.json").get_json()
    assert {key["kid"] for key in published["keys"]} == old | {new_kid}
    with app.app_context():
        from idp.web import services

        token = services().tokens.generate(grant_type="client_credentials", client=_Client())["access_token"]
    assert jwt.decode(token, KeySet.import_key_set(published)).header["kid"] == new_kid


def test_active_key_cannot_be_retired_but_an_old_one_can(config: Path) -> None:
    settings = load_settings(config)
    old_es256 = next(kid for kid, alg in _jwks(settings).items() if alg == "ES256")
    # "--": a key id is base64url, so it may begin with "-" (argparse would read an option)
    refused = idp(config, "keys", "retire", "--", old_es256)
    assert refused.returncode == 2 and "active" in refused.stderr
    idp(config, "keys", "rotate", "--alg", "ES256")
    assert idp(config, "keys", "retire", "--", old_es256).returncode == 0
    assert old_es256 not in _jwks(settings)


def _jwks(settings: Settings) -> dict[str, str]:
    from idp.oidc.keys import KeyRing

    public = json.loads(KeyRing.load(Path(settings.keys.directory)).jwks_json)
    assert all("d" not in key for key in public["keys"])
    return {key["kid"]: key["alg"] for key in public["keys"]}


class _Client:
    def get_client_id(self) -> str:
        return "machine"


def test_demo_refuses_to_start_on_a_taken_port(tmp_path: Path) -> None:
    """A demo still running elsewhere would answer the browser with its own client: stop at once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port=port, extra=f"port = {port}\n")
        done = idp(config, "demo")
    assert done.returncode == 2
    assert f"{port}" in done.stderr and "already in use" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_sigterm_stops_the_demo_with_its_provider_app_and_api(tmp_path: Path) -> None:
    """Needs ports 8001 and 8002 free (the demo app's and API's)."""
    port = free_port()
    config = write_config(tmp_path, port=port, extra=f"port = {port}\n")
    demo = subprocess.Popen(
        [sys.executable, "-m", "idp", "--config", str(config), "demo"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ports = (port, DEMO_PORT, DEMO_API_PORT)
        deadline = time.monotonic() + 60
        while not all(listening(each) for each in ports):
            assert demo.poll() is None, "idp demo stopped by itself"
            assert time.monotonic() < deadline, [each for each in ports if not listening(each)]
            time.sleep(0.2)
        started = Path(f"/proc/{demo.pid}/task/{demo.pid}/children").read_text().split()
        assert len(started) == 3, started

        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)

        assert not any(Path(f"/proc/{child}").exists() for child in started), "a demo process outlived it"
        assert not any(listening(each) for each in ports)
    finally:
        if demo.poll() is None:
            demo.kill()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# -- logout channels (OpenID Back-Channel and Front-Channel Logout 1.0) ---------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backchannel-logout-uri", "http://rp.example/bcl"], "plain http is allowed only for localhost"),
        (["--backchannel-logout-uri", "https://rp.example/bcl#x"], "without a fragment"),
        (["--backchannel-logout-uri", "rp.example/bcl"], "absolute http(s) URL"),
        (["--frontchannel-logout-uri", "javascript:alert(1)"], "absolute http(s) URL"),
        (["--frontchannel-logout-uri", "https://rp.example:port/fcl"], "port only in digits"),
        (["--backchannel-logout-session-required"], "needs its --*-logout-uri"),
        (["--frontchannel-logout-session-required"], "needs its --*-logout-uri"),
    ],
    ids=[
        "fails because a back-channel URI over http is not localhost",
        "fails because of a fragment",
        "fails because it is not absolute",
        "fails because a frame would run script",
        "fails because the port is not a number",
        "fails because back-channel session_required has no URI",
        "fails because front-channel session_required has no URI",
    ],
)
def test_logout_uri_refusals(config: Path, args: list[str], message: str) -> None:
    refused = idp(
        config, "clients", "create", "--name", "X", "--redirect-uri", "https://rp.example/cb", *args
    )
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr


def test_logout_uris_are_stored_with_their_session_requirement(config: Path) -> None:
    created = idp(
        config,
        "clients",
        "create",
        "--name",
        "Console",
        "--redirect-uri",
        "https://console.example/cb",
        "--backchannel-logout-uri",
        "https://console.example/bcl?tenant=1",
        "--backchannel-logout-session-required",
        "--frontchannel-logout-uri",
        "http://127.0.0.1:8080/fcl",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    database = Database(load_settings(config).database_url)
    with database.unit_of_work() as session:
        row = DurableStore.over(session).clients.get(json.loads(created.stdout)["client_id"])
        assert row is not None
        stored = (
            row.backchannel_logout_uri,
            row.backchannel_logout_session_required,
            row.frontchannel_logout_uri,
            row.frontchannel_logout_session_required,
        )
    database.engine.dispose()
    assert stored == ("https://console.example/bcl?tenant=1", True, "http://127.0.0.1:8080/fcl", False)


def test_users_are_managed_with_the_rules_of_the_pages(config: Path) -> None:
    assert create_user(config, "root", "--admin").returncode == 0  # alice is not the last administrator
    assert create_user(config, "alice", "--email", "alice@example.com").returncode == 0
    weak = idp(config, "users", "set-password", "alice", "--password-stdin", stdin="password1234\n")
    assert (weak.returncode, weak.stderr.count("\n")) == (2, 1) and "most common" in weak.stderr
    bad_name = idp(config, "users", "create", "al ice", "--password-stdin", stdin=PASSWORD)
    assert bad_name.returncode == 2 and "is not allowed" in bad_name.stderr
    changed = idp(
        config, "users", "set-password", "alice", "--password-stdin", stdin="a new long passphrase\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert idp(config, "users", "promote", "alice").returncode == 0
    assert idp(config, "users", "disable", "alice").returncode == 0
    assert (
        "alice\talice@example.com\tdisabled\tfactors: none\tadministrator"
        in idp(config, "users", "list").stdout
    )
    assert idp(config, "users", "enable", "alice").returncode == 0
    assert "alice\talice@example.com\tactive" in idp(config, "users", "list").stdout
    assert idp(config, "users", "delete", "alice").stdout == "deleted alice\n"
    assert "alice" not in idp(config, "users", "list").stdout
    gone = idp(config, "users", "enable", "alice")
    assert (gone.returncode, gone.stderr) == (2, "idp: no user named 'alice'\n")
    settings = load_settings(config)
    with Database(settings.database_url).unit_of_work() as session:
        events = [row.event for row in DurableStore.over(session).audit.query(limit=20)]
    assert events[:5] == ["user_deleted", "user_enabled", "user_disabled", "user_promoted", "password_set"]


def test_clients_are_shown_updated_given_new_secrets_and_deleted(config: Path) -> None:
    machine = idp(config, "clients", "create", "--name", "Machine")
    assert machine.returncode == 2 and "--grant-type client_credentials" in machine.stderr
    created = json.loads(
        idp(
            config, "clients", "create", "--name", "Machine", "--grant-type", "client_credentials", "--json"
        ).stdout
    )
    client_id = created["client_id"]
    update = idp(
        config, "clients", "update", client_id, "--grant-type", "authorization_code", "--grant-type",
        "client_credentials",
        "--redirect-uri", "https://app.example.com/cb", "--scope", "openid", "--scope", "email",
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    refused = idp(config, "clients", "update", client_id, "--redirect-uri", "javascript:alert(1)")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "scheme" in refused.stderr
    shown = json.loads(idp(config, "clients", "show", client_id).stdout)
    assert (shown["redirect_uris"], shown["scope"]) == (["https://app.example.com/cb"], "openid email")
    listed = idp(config, "clients", "list").stdout
    assert (
        "authorization_code client_credentials\tscope: openid email\tredirect: https://app.example.com/cb"
        in listed
    )
    rotated = json.loads(idp(config, "clients", "rotate-secret", client_id, "--json").stdout)
    assert rotated["client_id"] == client_id and rotated["client_secret"] != created["client_secret"]
    app = create_app(load_settings(config))
    grant = {"grant_type": "client_credentials"}
    with app.test_client() as http:
        assert http.post("/token", data=grant, auth=(client_id, created["client_secret"])).status_code == 401
        assert http.post("/token", data=grant, auth=(client_id, rotated["client_secret"])).status_code == 200
    assert idp(config, "clients", "delete", client_id).returncode == 0
    assert client_id not in idp(config, "clients", "list").stdout
    missing = idp(config, "clients", "show", client_id)
    assert (missing.returncode, missing.stderr) == (2, f"idp: no client with id {client_id!r}\n")


def test_client_ids_can_follow_an_option_on_the_command_line() -> None:
    """`idp clients create --introspect ID`: an id starting with '-' would be taken for an option (one
    in 64 URL-safe ids did: 200 of them had a 96% chance of one)."""
    ids = [
        register_client(
            name="machine", redirect_uris=(), public=False, grant_types=("client_credentials",), scope=""
        ).client.client_id
        for _ in range(200)
    ]
    assert not [client_id for client_id in ids if client_id.startswith("-")]
    assert len(set(ids)) == 200
