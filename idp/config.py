"""Settings: TOML -> frozen, validated settings; the only reader of the file and the environment."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from idp.languages import LANGUAGES, N_, language_of
from idp.store.redis_wire import connection_options

CONFIG_ENV = "IDP_CONFIG"
ENV_PREFIX = "IDP_"
# Settings that hold a secret: each may come from a file (`<key>_file`), and `idp config show` masks it.
SECRET_KEYS = (("database", "url"), ("redis", "url"), ("smtp", "password"), ("metrics", "bearer_token"))
PositiveSeconds = Annotated[int, Field(gt=0)]
SUPPORTED_DATABASES = ("sqlite", "postgresql")
AMR_VALUES = frozenset({"pwd", "otp", "email", "hwk", "swk", "user", "mfa"})
SigningAlg = Literal["RS256", "ES256"]
MIN_BEARER_TOKEN_LENGTH = 32
AAGUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ConfigError(Exception):
    """A configuration problem, told in one line naming the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatabaseSettings(_Section):
    url: str = ""
    # Connections kept per worker process: one per request the server runs at once.
    pool_size: Annotated[int, Field(ge=1, le=200)] = 16

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a database URL: {value!r}") from None
        if url.get_backend_name() not in SUPPORTED_DATABASES:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}; use sqlite:/// or postgresql+psycopg://"
            )
        return value


class RedisSettings(_Section):
    url: str = ""

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "must start with redis://, rediss:// or unix://, or be empty for the embedded store"
            )
        if value:
            connection_options(value, timeout=1.0)  # only the URL's own options are checked
        return value


class KeySettings(_Section):
    directory: str = "keys"
    algorithm: SigningAlg = "ES256"


class PasswordSettings(_Section):
    memory_cost: Annotated[int, Field(ge=8192)] = 19456
    time_cost: Annotated[int, Field(ge=1)] = 2
    parallelism: Annotated[int, Field(ge=1)] = 1
    min_length: Annotated[int, Field(ge=8)] = 12


class SessionSettings(_Section):
    lifetime: PositiveSeconds = 43200
    cookie_name: str = "idp_session"


class TokenSettings(_Section):
    access_token_lifetime: PositiveSeconds = 600
    id_token_lifetime: PositiveSeconds = 600
    refresh_token_lifetime: PositiveSeconds = 2592000
    code_lifetime: Annotated[int, Field(gt=0, le=600)] = 60
    sign_in_lifetime: PositiveSeconds = 900


class TotpSettings(_Section):
    issuer_name: str = "idp"
    drift_steps: Annotated[int, Field(ge=0, le=2)] = 1


class WebAuthnSettings(_Section):
    """Passkeys and security keys; the RP ID defaults to the issuer's host name."""

    rp_id: str = ""
    rp_name: str = "idp"
    challenge_ttl: Annotated[int, Field(ge=30, le=900)] = 300
    # Trust anchors for attestation (hwk): a directory of PEM root certificates and/or a FIDO MDS3
    # BLOB with the PEM root its signing chain ends at; an optional AAGUID allow-list.
    attestation_roots: str = ""
    mds_blob: str = ""
    mds_root: str = ""
    allowed_aaguids: tuple[str, ...] = ()

    @field_validator("allowed_aaguids")
    @classmethod
    def _aaguids(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not AAGUID.fullmatch(value):
                raise ValueError(f"not an AAGUID (lowercase 8-4-4-4-12 hex): {value!r}")
        return values

    @model_validator(mode="after")
    def _blob_has_root(self) -> WebAuthnSettings:
        if self.mds_blob and not self.mds_root:
            raise ValueError("mds_blob needs mds_root, the certificate its signing chain ends at")
        return self


class AccountSettings(_Section):
    """Changes on the account pages need an MFA sign-in no older than this (seconds); a password reset
    link works once, for `reset_link_lifetime` seconds."""

    reauthentication_max_age: Annotated[int, Field(ge=0)] = 300
    reset_link_lifetime: Annotated[int, Field(ge=1, le=3600)] = 900


class AdminSettings(_Section):
    """Administrators must hold a key that reaches `acr` (empty: the strongest level) and enrol one first;
    every administrative action needs that level proven no more than `max_age` seconds before."""

    acr: str = ""
    max_age: PositiveSeconds = 300


class ConsentSettings(_Section):
    """How long a user's consent to a third-party client is remembered (OIDC Core 3.1.2.4), in seconds."""

    lifetime: PositiveSeconds = 31536000


class SmtpSettings(_Section):
    """Outgoing mail; with no host, messages are written to the outbox directory instead."""

    host: str = ""
    port: Annotated[int, Field(gt=0, lt=65536)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    from_address: str = "idp@localhost"
    timeout: Annotated[int, Field(gt=0, le=120)] = 10
    outbox: str = ""


class EmailFactorSettings(_Section):
    """Email codes: weaker than an authenticator, so by default only for step-up, not at sign-in."""

    sign_in: bool = False
    step_up: bool = True
    code_lifetime: Annotated[int, Field(ge=60, le=3600)] = 600
    max_users_per_email: Annotated[int, Field(ge=1)] = 5


class FactorSettings(_Section):
    email: EmailFactorSettings = EmailFactorSettings()


class BackoffSettings(_Section):
    """Failures allowed before waiting starts; then each failure doubles the wait, up to the cap."""

    free_attempts: Annotated[int, Field(ge=1)] = 5
    base_delay: PositiveSeconds = 30
    max_delay: PositiveSeconds = 900
    window: PositiveSeconds = 86400


class ThrottleSettings(_Section):
    """NIST SP 800-63B 5.2.2: at most `lock_after` consecutive password failures per account."""

    lock_after: Annotated[int, Field(ge=10, le=100)] = 100
    lock_window: PositiveSeconds = 30 * 86400
    password_account: BackoffSettings = BackoffSettings()
    password_address: BackoffSettings = BackoffSettings(free_attempts=20, base_delay=10, max_delay=900)
    second_factor: BackoffSettings = BackoffSettings()
    webauthn_address: BackoffSettings = BackoffSettings(free_attempts=20, base_delay=10, max_delay=600)
    client_auth: BackoffSettings = BackoffSettings(free_attempts=10, base_delay=5, max_delay=300)
    user_code_address: BackoffSettings = BackoffSettings(free_attempts=10, base_delay=10, max_delay=900)


class AddressLimitSettings(_Section):
    """What one client address can make the provider keep, however it fails: sign-ins started within
    the sign-in lifetime (beyond: 429), failure audit events recorded within an hour (beyond: counted
    in a metric only)."""

    sign_ins: Annotated[int, Field(ge=1)] = 300
    audited_failures: Annotated[int, Field(ge=1)] = 100
    password_resets: Annotated[int, Field(ge=1)] = 20


class LevelSettings(_Section):
    """One acr level: the combinations of amr values that reach it and how long it lasts; `title` and
    `sentence` say it in plain words on the step-up page ("asks for a passkey or security key")."""

    satisfied_by: tuple[tuple[str, ...], ...]
    ttl: PositiveSeconds
    aliases: tuple[str, ...] = ()
    title: str = N_("a stronger sign-in")
    sentence: str = ""

    @field_validator("satisfied_by")
    @classmethod
    def _known_amr(cls, ways: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if not ways:
            raise ValueError("needs at least one combination of amr values")
        for way in ways:
            if not way:
                raise ValueError("a combination of amr values is empty")
            unknown = set(way) - AMR_VALUES
            if unknown:
                raise ValueError(f"unknown amr values {sorted(unknown)}; known: {sorted(AMR_VALUES)}")
        return ways


def _default_levels() -> dict[str, LevelSettings]:
    return {
        "mfa": LevelSettings(
            satisfied_by=(("pwd", "otp"), ("pwd", "hwk"), ("pwd", "swk"), ("hwk", "user"), ("swk", "user")),
            ttl=43200,
            aliases=("http://schemas.openid.net/pape/policies/2007/06/multi-factor",),
            title=N_("a second factor"),
            sentence=N_(
                "Your password and a second factor: a code from your authenticator app, a passkey "
                "or a security key."
            ),
        ),
        "phr": LevelSettings(
            satisfied_by=(("pwd", "hwk"), ("pwd", "swk"), ("hwk", "user"), ("swk", "user")),
            ttl=900,
            title=N_("a passkey or security key"),
            sentence=N_("A passkey or security key proves it is you and cannot be tricked by a fake site."),
        ),
        "phrh": LevelSettings(
            satisfied_by=(("pwd", "hwk"), ("hwk", "user")),
            ttl=900,
            title=N_("an approved security key"),
            sentence=N_("Only a hardware security key of a make your organisation approved will do."),
        ),
    }


class AssuranceSettings(_Section):
    """acr levels, weakest first; `minimum` is what every sign-in must reach."""

    minimum: str = "mfa"
    enrol_at_step_up: tuple[Literal["webauthn"], ...] = ()
    levels: dict[str, LevelSettings] = Field(default_factory=_default_levels)

    @model_validator(mode="after")
    def _minimum_is_a_level(self) -> AssuranceSettings:
        if self.minimum not in self.levels:
            raise ValueError(f"minimum {self.minimum!r} is not one of the levels {list(self.levels)}")
        return self


class ScopePolicy(_Section):
    """What a scope needs (`acr`, `max_age`), and why, in the words of the step-up page: `description`
    completes "asks ... to ..." (e.g. "approve a payment")."""

    acr: str | None = None
    max_age: Annotated[int, Field(ge=0)] | None = None
    description: str = ""


class ParSettings(_Section):
    """Pushed authorization requests (RFC 9126): required of every client or not, and how long a
    pushed request's request_uri lives (single use)."""

    required: bool = False
    lifetime: Annotated[int, Field(ge=10, le=600)] = 60


class DeviceSettings(_Section):
    """The device authorization grant (RFC 8628): how long a device code and its user code live, and
    the seconds a device must wait between polls (each poll too soon adds 5, RFC 8628 3.5)."""

    code_lifetime: Annotated[int, Field(ge=10, le=1800)] = 600
    poll_interval: Annotated[int, Field(ge=1, le=60)] = 5


class ClientKeySettings(_Section):
    """Fetching a client's registered jwks_uri: a short timeout, a size cap, and a cache."""

    fetch_timeout: Annotated[int, Field(ge=1, le=30)] = 3
    max_bytes: Annotated[int, Field(ge=1024, le=1048576)] = 65536
    cache_seconds: Annotated[int, Field(ge=0, le=86400)] = 300


class LogoutSettings(_Section):
    """Back-channel logout deliveries (OpenID Back-Channel Logout 1.0): each POST's timeout, how many
    attempts a client gets, the delay before the first retry (doubling after each), and how many
    deliveries run at once per provider process."""

    backchannel_timeout: Annotated[int, Field(ge=1, le=30)] = 5
    backchannel_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backchannel_retry_delay: Annotated[int, Field(ge=1, le=300)] = 2
    backchannel_workers: Annotated[int, Field(ge=1, le=64)] = 4


PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AuthorizationDetailType(_Section):
    """One RFC 9396 authorization details type: the JSON Schema a request's detail must match (a file,
    relative to the config file, or an inline table), the line the approval page shows (`{field}`
    placeholders naming the schema's properties), the level approving it needs, and whether the token
    it grants is spent by its first use."""

    json_schema: dict[str, Any] = Field(alias="schema")
    title: str
    acr: str = ""
    one_time: bool = False

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema(cls, value: object) -> dict[str, Any]:
        """A file name is read as JSON; either way the document must be a valid JSON Schema."""
        if isinstance(value, str):
            try:
                value = json.loads(Path(value).read_text(encoding="utf-8"))
            except OSError as error:
                raise ValueError(f"{value}: {error.strerror}") from None
            except ValueError as error:
                raise ValueError(f"{value}: not JSON ({error})") from None
        document = _tuples_to_lists(value)
        if not isinstance(document, dict):
            raise ValueError("must be a JSON Schema file name or an inline table")
        try:
            Draft202012Validator.check_schema(document)
        except SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
        return document

    @model_validator(mode="after")
    def _placeholders_are_properties(self) -> AuthorizationDetailType:
        declared = self.json_schema.get("properties", {})
        for _text, field, spec, conversion in string.Formatter().parse(self.title):
            if field is None:
                continue
            if not PLACEHOLDER.fullmatch(field) or spec or conversion:
                raise ValueError(f"title: {{{field}}} is not a plain {{field}} placeholder")
            if field not in declared:
                raise ValueError(f"title: {{{field}}} names no property the schema declares")
        return self


class DpopSettings(_Section):
    """DPoP (RFC 9449): how far a proof's `iat` may be from the provider's clock, and whether proofs
    must carry a nonce the provider gave out (`use_dpop_nonce`), which stays valid `nonce_lifetime`."""

    require_nonce: bool = False
    proof_window: Annotated[int, Field(ge=5, le=600)] = 60
    nonce_lifetime: Annotated[int, Field(ge=30, le=3600)] = 300


HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MIN_CONTRAST = 4.5  # WCAG 2.2 1.4.3: the white text of buttons on the accent colour
INK = "#1b1f24"  # the pages' text colour (static/idp.css --ink), the product name's on the background


class BrandingSettings(_Section):
    """How the hosted pages and mail present the service, with no template edits: its name, a logo
    (an https URL or a path on this site), colours, a support link (https or mailto), and a folder of
    templates searched before the provider's own (to reword mail: email/NAME.txt and .html)."""

    product_name: Annotated[str, Field(min_length=1, max_length=60)] = N_("Sign-in service")
    logo_url: str = ""
    accent_colour: str = "#0b5cad"
    background_colour: str = "#f6f8fa"
    support_url: str = ""
    templates: str = ""

    @field_validator("accent_colour", "background_colour")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not HEX_COLOUR.fullmatch(value):
            raise ValueError("must be a colour like #0b5cad")
        return value.lower()

    @field_validator("accent_colour")
    @classmethod
    def _readable_on_white(cls, value: str) -> str:
        if contrast(value, "#ffffff") < MIN_CONTRAST:
            raise ValueError(
                f"white text on it must reach a contrast of {MIN_CONTRAST}:1; choose a darker colour"
            )
        return value

    @model_validator(mode="after")
    def _readable_on_the_background(self) -> BrandingSettings:
        """The product name (text colour) and the links and focus rings (accent) sit on the background;
        text needs 4.5:1 (WCAG 2.2 1.4.3), which also gives focus rings their 3:1 (1.4.11)."""
        if contrast(INK, self.background_colour) < MIN_CONTRAST:
            raise ValueError(
                f"background_colour: the text on it must reach a contrast of {MIN_CONTRAST}:1; "
                "choose a lighter background"
            )
        if contrast(self.accent_colour, self.background_colour) < MIN_CONTRAST:
            raise ValueError(
                f"background_colour: the accent colour on it (links, focus rings) must reach a contrast of "
                f"{MIN_CONTRAST}:1; choose a lighter background or a darker accent colour"
            )
        return self

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str) -> str:
        if value and not (
            value.startswith("https://") or (value.startswith("/") and not value.startswith("//"))
        ):
            raise ValueError("must be an https URL or a path on this site")
        return value

    @field_validator("support_url")
    @classmethod
    def _support(cls, value: str) -> str:
        if value and not value.startswith(("https://", "mailto:")):
            raise ValueError("must be an https or mailto URL")
        return value


def contrast(first: str, second: str) -> float:
    """WCAG 2.2 contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[start : start + 2], 16) / 255 for start in (1, 3, 5)]
        red, green, blue = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8000
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    engine: Literal["granian", "gunicorn"] = "granian"
    # Requests a granian worker runs at once, each on a thread of its own (docs/performance.md).
    threads: Annotated[int, Field(ge=1, le=256)] = 16
    # Reverse proxies (CIDRs) whose Forwarded / X-Forwarded-* headers are believed; nobody else's are.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError as error:
                raise ValueError(f"not a CIDR: {error}") from None
        return values


class MetricsSettings(_Section):
    """Where Prometheus scrapes /metrics: a listener of its own (`host:port`, started by `idp serve`),
    and/or the main port with a bearer token. With neither, /metrics answers 404: never public."""

    listen: str = ""
    bearer_token: str = ""

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value:
            listen_address(value)
        return value

    @field_validator("bearer_token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < MIN_BEARER_TOKEN_LENGTH:
            raise ValueError(
                f"needs at least {MIN_BEARER_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`)"
            )
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        return listen_address(self.listen) if self.listen else None


def listen_address(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464" or "[::1]:9464" as (host, port)."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port, like 127.0.0.1:9464, not {value!r}")
    return host, int(port)


class Settings(_Section):
    issuer: str = "http://localhost:8000"
    instance_dir: str = "instance"
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    keys: KeySettings = KeySettings()
    passwords: PasswordSettings = PasswordSettings()
    sessions: SessionSettings = SessionSettings()
    tokens: TokenSettings = TokenSettings()
    totp: TotpSettings = TotpSettings()
    webauthn: WebAuthnSettings = WebAuthnSettings()
    account: AccountSettings = AccountSettings()
    admin: AdminSettings = AdminSettings()
    consent: ConsentSettings = ConsentSettings()
    smtp: SmtpSettings = SmtpSettings()
    factors: FactorSettings = FactorSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    address_limits: AddressLimitSettings = AddressLimitSettings()
    assurance: AssuranceSettings = AssuranceSettings()
    scopes: dict[str, ScopePolicy] = Field(default_factory=dict)
    par: ParSettings = ParSettings()
    client_keys: ClientKeySettings = ClientKeySettings()
    logout: LogoutSettings = LogoutSettings()
    authorization_details: dict[str, AuthorizationDetailType] = Field(default_factory=dict)
    device: DeviceSettings = DeviceSettings()
    dpop: DpopSettings = DpopSettings()
    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    branding: BrandingSettings = BrandingSettings()
    # The operator's own wording in each language, by the text as configured ("approve a payment"):
    # [translations."zh-CN"]. Texts not listed show the catalogue's translation or, failing that, as written.
    translations: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("translations")
    @classmethod
    def _languages_spoken(cls, tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        """Each table names a language of the pages (in any spelling of it), kept under its own tag."""
        by_tag: dict[str, dict[str, str]] = {}
        for tag, texts in tables.items():
            language = language_of(tag)
            if language is None:
                known = ", ".join(spoken.tag for spoken in LANGUAGES)
                raise ValueError(f"{tag!r} is not a language the pages speak ({known})")
            by_tag[language.tag] = {**by_tag.get(language.tag, {}), **texts}
        return by_tag

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment or value.endswith("/"):
            raise ValueError("must have no query, fragment or trailing slash (OIDC Discovery 4.3)")
        return value

    @model_validator(mode="after")
    def _scope_levels_exist(self) -> Settings:
        for scope, policy in self.scopes.items():
            if policy.acr is not None and policy.acr not in self.assurance.levels:
                raise ValueError(f"scopes.{scope}.acr: {policy.acr!r} is not a configured level")
        return self

    @model_validator(mode="after")
    def _admin_level_exists(self) -> Settings:
        if self.admin.acr and self.admin.acr not in self.assurance.levels:
            raise ValueError(f"admin.acr: {self.admin.acr!r} is not a configured level")
        return self

    @model_validator(mode="after")
    def _detail_levels_exist(self) -> Settings:
        for name, detail in self.authorization_details.items():
            if detail.acr and detail.acr not in self.assurance.levels:
                raise ValueError(
                    f"authorization_details.{name}.acr: {detail.acr!r} is not a configured level"
                )
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{Path(self.instance_dir).resolve() / 'idp.sqlite3'}"

    @property
    def outbox(self) -> Path:
        return Path(self.smtp.outbox or Path(self.instance_dir) / "outbox")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def rp_id(self) -> str:
        return self.webauthn.rp_id or str(urlsplit(self.issuer).hostname)

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file named by `path`, else by IDP_CONFIG, else use the built-in defaults; then
    IDP_SECTION__KEY variables override it, and `*_file` keys read secrets from files."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get(CONFIG_ENV)
    raw: dict[str, Any] = {}
    if chosen:
        try:
            raw = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"config file {chosen}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {chosen}: not valid TOML ({error})") from None
    base = Path(chosen).parent if chosen else Path()
    resolved = resolve_schema_files(read_secret_files(apply_environment(raw, environ)), base)
    return settings_from_mapping(resolved)


def resolve_schema_files(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """`schema = "payment.json"` in an [authorization_details.TYPE] table names a file beside the
    config file (an absolute name stays as it is)."""
    resolved = copy.deepcopy(raw)
    types = resolved.get("authorization_details")
    for table in types.values() if isinstance(types, dict) else ():
        if isinstance(table, dict) and isinstance(table.get("schema"), str):
            table["schema"] = str(base / table["schema"])
    return resolved


def apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """IDP_SERVER__PORT=8080 sets [server] port (12-factor); only variables naming a settings section or
    top-level key count, so IDP_CONFIG and other IDP_ variables are left alone."""
    merged = copy.deepcopy(raw)
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in Settings.model_fields or not all(path):
            continue
        table = merged
        for part in path[:-1]:
            found = table.setdefault(part, {})
            if not isinstance(found, dict):
                raise ConfigError(f"config error: {name}: {part} is not a section")
            table = found
        table[path[-1]] = _environment_value(path, value)
    return merged


def _environment_value(path: list[str], value: str) -> Any:
    """A text setting takes the variable as it is; any other is read as a TOML value (8080, true, [...])."""
    if _is_text(path):
        return value
    try:
        return tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        return value


def _is_text(path: list[str]) -> bool:
    model: type[BaseModel] = Settings
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return True  # unknown keys (and `*_file` keys) are text; validation names the unknown ones
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
            continue
        return field.annotation is str
    return False


def read_secret_files(raw: dict[str, Any]) -> dict[str, Any]:
    """`url_file = "/run/secrets/db"` in place of `url`: container and systemd credentials (one line)."""
    resolved = copy.deepcopy(raw)
    for section, key in SECRET_KEYS:
        table = resolved.get(section)
        if not isinstance(table, dict) or f"{key}_file" not in table:
            continue
        source = table.pop(f"{key}_file")
        if key in table:
            raise ConfigError(f"config error: {section}.{key}_file: {section}.{key} is set too; keep one")
        try:
            table[key] = Path(str(source)).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"config error: {section}.{key}_file: {source}: {error.strerror}") from None
    return resolved


def settings_from_mapping(raw: dict[str, Any]) -> Settings:
    """Validate a parsed TOML document; the first problem becomes one ConfigError line."""
    try:
        return Settings.model_validate(_lists_to_tuples(raw))
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        elif first["type"] == "value_error":
            reason = str(first["ctx"]["error"])
        else:
            reason = first["msg"]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"config error: {key}: {reason}" if key else f"config error: {reason}") from None


def _tuples_to_lists(value: Any) -> Any:
    """A JSON document read from TOML: arrays back to lists, as JSON Schema expects them."""
    if isinstance(value, dict):
        return {key: _tuples_to_lists(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_tuples_to_lists(item) for item in value]
    return value


def _lists_to_tuples(value: Any) -> Any:
    """TOML arrays arrive as lists; frozen settings hold tuples (strict mode accepts only those)."""
    if isinstance(value, dict):
        return {key: _lists_to_tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_lists_to_tuples(item) for item in value)
    return value
