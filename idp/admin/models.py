"""What the admin API reads and answers, as pydantic models: they validate requests and are the
schemas of the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from idp.management.audit import LARGEST_STORED
from idp.management.users import USERNAME

# One line of printable text: no control characters (a NUL is refused by PostgreSQL, a newline forges logs).
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, Field(max_length=2000, pattern=ONE_LINE)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=ONE_LINE)]
Identifier = Annotated[str, Field(max_length=64, pattern=ONE_LINE)]
Seconds = Annotated[int, Field(ge=0, le=10**9)]
Timestamp = Annotated[int, Field(ge=0, le=LARGEST_STORED)]


class Body(BaseModel):
    """A request body: exactly these members, of these types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters: strings from the URL converted to the declared types; others are ignored."""

    model_config = ConfigDict(extra="ignore")


class Answer(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- users -----------------------------------------------------------------------------------------


class UserSearch(Query):
    q: Annotated[
        str, Field(max_length=200, pattern=ONE_LINE, description="part of the name or email address")
    ] = ""
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class NewUser(Body):
    username: Annotated[str, Field(pattern=USERNAME.pattern)]
    password: Annotated[str, Field(max_length=256)]
    email: Annotated[str, Field(max_length=320, pattern=ONE_LINE)] | None = None
    email_verified: bool = False


class NewPassword(Body):
    password: Annotated[str, Field(max_length=256)]
    temporary: Annotated[
        bool, Field(description="for one sign-in: the user chooses their own password right after it")
    ] = False


class User(Answer):
    id: str
    username: str
    email: str | None
    email_verified: bool
    disabled: bool
    is_admin: bool
    created_at: int


class UserPage(Answer):
    users: list[User]
    total: int
    offset: int
    limit: int


class Factor(Answer):
    id: str
    kind: str
    name: str
    created_at: int
    last_used_at: int | None


class Factors(Answer):
    factors: list[Factor]


class Session(Answer):
    sid: str
    created_at: int
    expires_at: int
    ip: str | None
    user_agent: str | None
    acr: str | None


class Sessions(Answer):
    sessions: list[Session]


class Count(Answer):
    """How many things an operation removed or ended."""

    count: int


# -- clients ---------------------------------------------------------------------------------------

RedirectUris = Annotated[list[Text], Field(max_length=50)]
AcrValues = Annotated[list[Name], Field(max_length=20)]
GrantTypes = list[
    Literal[
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",  # RFC 8628: no redirect URI needed
    ]
]


class NewClient(Body):
    name: Name
    redirect_uris: RedirectUris = []
    post_logout_redirect_uris: RedirectUris = []
    grant_types: GrantTypes = []
    scope: Text = "openid profile email"
    public: bool = False
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] | None
    ) = None
    jwks_uri: Text | None = None
    id_token_signed_response_alg: Literal["RS256", "ES256"] = "RS256"
    default_acr_values: AcrValues = []
    default_max_age: Seconds | None = None
    introspect_audiences: Annotated[list[Identifier], Field(max_length=50)] = []
    require_pushed_authorization_requests: bool = False
    third_party: bool = False
    dpop_bound_access_tokens: bool = False


class ClientChanges(Body):
    """Only the members sent change; each replaces what is registered."""

    name: Name | None = None
    redirect_uris: RedirectUris | None = None
    post_logout_redirect_uris: RedirectUris | None = None
    grant_types: GrantTypes | None = None
    scope: Text | None = None
    default_acr_values: AcrValues | None = None
    default_max_age: Seconds | None = None


class Client(Answer):
    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    default_acr_values: list[str]
    default_max_age: int | None
    introspect_audiences: list[str]
    jwks_uri: str | None
    require_pushed_authorization_requests: bool
    third_party: bool
    dpop_bound_access_tokens: bool
    created_at: int


class Clients(Answer):
    clients: list[Client]


class ClientSecret(Answer):
    """Shown once: only the secret's hash is stored."""

    client_id: str
    client_secret: str | None


# -- audit -----------------------------------------------------------------------------------------


class AuditSearch(Query):
    user_id: Identifier | None = None
    client_id: Identifier | None = None
    event: Identifier | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    before_id: Annotated[int | None, Field(ge=0, le=LARGEST_STORED)] = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class AuditEvent(Answer):
    id: int
    at: int
    event: str
    outcome: str
    user_id: str | None
    client_id: str | None
    ip: str | None
    detail: dict[str, Any]


class AuditEvents(Answer):
    events: list[AuditEvent]


# -- keys ------------------------------------------------------------------------------------------


class KeyRotation(Body):
    algorithms: Annotated[list[Literal["ES256", "RS256"]], Field(min_length=1, max_length=2)] = [
        "ES256",
        "RS256",
    ]


class Key(Answer):
    kid: str
    alg: str
    active: bool


class Keys(Answer):
    keys: list[Key]


class Problem(Answer):
    """RFC 9457 problem details: what was wrong with the request."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class BearerError(Answer):
    """The refusal of a token (RFC 6750 3, RFC 9470 3); WWW-Authenticate says what would do."""

    error: str
