"""Durable schema: users, factors, clients, consents, refresh-token families and audit events."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    # Canonical (idp.email_address); verified once the user proved it, or the operator vouched for it.
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(Integer)
    # An administrator must hold an attested key and act only with a fresh admin-level sign-in.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The password is a one-time one an operator set: the next sign-in replaces it before anything else.
    password_must_change: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    # What flask-login asks of a user; only signed-in users are ever loaded (idp.views.account.guard).
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return not self.disabled

    def get_id(self) -> str:
        return self.id


class FactorKind(StrEnum):
    """What a stored factor is (`Factor.kind`); idp.auth.policy says which method proves each."""

    TOTP = "totp"
    WEBAUTHN = "webauthn"
    EMAIL = "email"
    RECOVERY_CODE = "recovery_code"


class Factor(Base):
    """A second factor a user enrolled: TOTP, WebAuthn credential, verified email, recovery codes."""

    __tablename__ = "factors"
    __table_args__ = (
        Index("ix_factors_user_kind", "user_id", "kind"),
        Index("ix_factors_kind_name", "kind", "name"),  # the accounts an email address is bound to
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(320))  # an email factor's name is its canonical address
    # Finds a factor without knowing its user: a digest of a WebAuthn credential id.
    lookup_key: Mapped[str | None] = mapped_column(String(80), unique=True, index=True)
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[int | None] = mapped_column(Integer)
    # TOTP: the newest time step accepted; a code of this step or an earlier one is refused (RFC 6238 5.2).
    last_step: Mapped[int | None] = mapped_column(Integer)


class UserSession(Base):
    """A browser session signed in as a user: what the account page lists and can end.

    The session's data lives in the ephemeral store under `storage_key`; this row only indexes it.
    """

    __tablename__ = "user_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    acr: Mapped[str | None] = mapped_column(String(64))


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    grant_types: Mapped[list[str]] = mapped_column(default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    default_acr_values: Mapped[list[str]] = mapped_column(default=list)
    default_max_age: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(Integer)
    # A resource server: the audiences (client ids) whose access tokens it may introspect (RFC 7662 4).
    introspect_audiences: Mapped[list[str]] = mapped_column(default=list)
    # How the client authenticates (OIDC Registration 2): "none" for a public client.
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(32), default="client_secret_basic", server_default="client_secret_basic"
    )
    # The public keys of the JWTs it signs (request objects, client assertions): inline, or by URL.
    jwks: Mapped[dict[str, Any] | None] = mapped_column()
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    # The one alg its request objects use ("none": unsigned ones, by opt-in); None: any we support.
    request_object_signing_alg: Mapped[str | None] = mapped_column(String(16))
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Run by someone else than the provider's operator: users allow it their data first (consent).
    third_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # Told when a browser session it received tokens in ends (OpenID Back-/Front-Channel Logout 1.0).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Its access tokens are always DPoP-bound (RFC 9449 5.2): a token request without a proof is refused.
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Consent(Base):
    """What a user allowed a client to receive (OIDC Core 3.1.2.4): the scopes, and when."""

    __tablename__ = "consents"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[int] = mapped_column(Integer)


class RefreshToken(Base):
    """One refresh token of a family; only the newest of a family is usable (rotation)."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    # What the authorization request asked for (a refresh may repeat it); None before 0004.
    requested_scope: Mapped[str | None] = mapped_column(Text)
    authentication: Mapped[dict[str, Any]] = mapped_column()
    issued_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    rotated: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # The browser session it was issued from; unless `offline` (offline_access, OIDC Core 11), the
    # token works only while that session lives.
    sid: Mapped[str | None] = mapped_column(String(64))
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    # A public client's DPoP key (RFC 7638 thumbprint): a refresh needs a proof by that key (RFC 9449 5).
    dpop_jkt: Mapped[str | None] = mapped_column(String(43))


class SessionClient(Base):
    """A client that received tokens in a browser session (`sid`): told when that session ends."""

    __tablename__ = "session_clients"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    first_at: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
