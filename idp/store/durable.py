"""Repositories over one SQLAlchemy session; they never commit (the unit of work does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from idp.store.tables import AuditEvent, Client, Factor, RefreshToken, User, UserSession


class Users:
    def __init__(self, session: Session) -> None:
        self._session = session
        # The session's identity map holds entities weakly: keeping the accounts loaded in this unit
        # of work lets later look-ups of the same account be answered from it, without a query.
        self._loaded: dict[str, User] = {}

    def get(self, user_id: str) -> User | None:
        user = self._session.get(User, user_id)
        if user is not None:
            self._loaded[user_id] = user
        return user

    def may_hold_tokens(self, user_id: str) -> bool:
        """The account exists and is not disabled (one column read, no entity loaded)."""
        disabled = self._session.scalar(select(User.disabled).where(User.id == user_id))
        return disabled is False

    def by_username(self, username: str) -> User | None:
        return self._session.scalars(select(User).where(User.username == username)).one_or_none()

    def add(self, user: User) -> None:
        self._session.add(user)
        self._session.flush()

    def all(self) -> Sequence[User]:
        return self._session.scalars(select(User).order_by(User.username)).all()


class Factors:
    """Every change to factors goes through here, so a user's factors are read once per unit of work
    and read again only after one is added or removed."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._of_user: dict[str, Sequence[Factor]] = {}

    def of_user(self, user_id: str, kind: str | None = None) -> Sequence[Factor]:
        if user_id not in self._of_user:
            query = select(Factor).where(Factor.user_id == user_id).order_by(Factor.created_at)
            self._of_user[user_id] = self._session.scalars(query).all()
        return [factor for factor in self._of_user[user_id] if kind is None or factor.kind == kind]

    def count_named(self, kind: str, name: str) -> int:
        """How many factors of this kind carry this name (users bound to one email address)."""
        query = select(func.count()).select_from(Factor).where(Factor.kind == kind, Factor.name == name)
        return int(self._session.scalar(query) or 0)

    def by_lookup_key(self, lookup_key: str) -> Factor | None:
        return self._session.scalars(select(Factor).where(Factor.lookup_key == lookup_key)).one_or_none()

    def add(self, factor: Factor) -> None:
        self._of_user.clear()
        self._session.add(factor)
        self._session.flush()

    def remove(self, user_id: str, factor_id: str) -> bool:
        self._of_user.clear()
        result = self._session.execute(
            delete(Factor).where(Factor.user_id == user_id, Factor.id == factor_id)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def remove_all(self, user_id: str, kind: str | None = None) -> int:
        self._of_user.clear()
        statement = delete(Factor).where(Factor.user_id == user_id)
        if kind is not None:
            statement = statement.where(Factor.kind == kind)
        result = self._session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    def consume(self, user_id: str, lookup_key: str) -> bool:
        """Delete a single-use factor (a recovery code); True for the one caller that found it."""
        self._of_user.clear()
        result = self._session.execute(
            delete(Factor).where(Factor.user_id == user_id, Factor.lookup_key == lookup_key)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def mark_used(self, factor_id: str, at: int, data: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"last_used_at": at} if data is None else {"last_used_at": at, "data": data}
        # No re-read needed: the ORM applies the new values to the factors this session holds.
        self._session.execute(update(Factor).where(Factor.id == factor_id).values(**values))


class Clients:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, client_id: str) -> Client | None:
        return self._session.get(Client, client_id)

    def get_detached(self, client_id: str) -> Client | None:
        """A client row that stays usable after this unit of work (for per-process caches)."""
        row = self._session.get(Client, client_id)
        if row is not None:
            self._session.expunge(row)
        return row

    def add(self, client: Client) -> None:
        self._session.add(client)
        self._session.flush()

    def all(self) -> Sequence[Client]:
        return self._session.scalars(select(Client).order_by(Client.created_at)).all()


class RefreshTokens:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, token: RefreshToken) -> None:
        self._session.add(token)
        self._session.flush()

    def with_holder(self, token_hash: str) -> tuple[RefreshToken, User] | None:
        """The token and the account holding it, in one query (None when either is gone)."""
        query = select(RefreshToken, User).join(User, User.id == RefreshToken.user_id)
        row = self._session.execute(query.where(RefreshToken.token_hash == token_hash)).one_or_none()
        return None if row is None else (row[0], row[1])

    def claim_for_rotation(self, token_hash: str) -> bool:
        """Mark the token rotated; True only for the one caller that found it current (atomic)."""
        result = self._session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.rotated.is_(False),
                RefreshToken.revoked.is_(False),
            )
            .values(rotated=True)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def live_families_of(self, user_id: str, *, now: int) -> list[str]:
        """The families of a user whose newest token is still usable (not revoked, not expired)."""
        query = select(RefreshToken.family_id).where(
            RefreshToken.user_id == user_id,
            RefreshToken.rotated.is_(False),
            RefreshToken.revoked.is_(False),
            RefreshToken.expires_at > now,
        )
        return sorted(set(self._session.scalars(query)))

    def revoke_family(self, family_id: str) -> None:
        self._session.execute(
            update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True)
        )


class UserSessions:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: UserSession) -> None:
        self._session.execute(
            delete(UserSession).where(
                UserSession.user_id == row.user_id, UserSession.expires_at <= row.created_at
            )
        )
        self._session.add(row)
        self._session.flush()

    def of_user(self, user_id: str, *, now: int) -> Sequence[UserSession]:
        query = (
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.expires_at > now)
            .order_by(UserSession.created_at.desc())
        )
        return self._session.scalars(query).all()

    def get(self, sid: str) -> UserSession | None:
        return self._session.get(UserSession, sid)

    def remove(self, sid: str) -> None:
        self._session.execute(delete(UserSession).where(UserSession.sid == sid))

    def rekey(self, sid: str, *, storage_key: str) -> None:
        """The session's data moved to a new key (its id changed when the level rose)."""
        self._session.execute(
            update(UserSession).where(UserSession.sid == sid).values(storage_key=storage_key)
        )

    def set_acr(self, sid: str, acr: str) -> None:
        self._session.execute(update(UserSession).where(UserSession.sid == sid).values(acr=acr))


class Audit:
    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, event: AuditEvent) -> None:
        self._session.add(event)

    def record_all(self, events: list[AuditEvent]) -> None:
        self._session.add_all(events)

    def of_user(self, user_id: str, limit: int = 50) -> Sequence[AuditEvent]:
        query = (
            select(AuditEvent)
            .where(AuditEvent.user_id == user_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        return self._session.scalars(query).all()


@dataclass(frozen=True)
class DurableStore:
    """The repositories of one unit of work."""

    users: Users
    factors: Factors
    clients: Clients
    refresh_tokens: RefreshTokens
    sessions: UserSessions
    audit: Audit

    @classmethod
    def over(cls, session: Session) -> DurableStore:
        return cls(
            users=Users(session),
            factors=Factors(session),
            clients=Clients(session),
            refresh_tokens=RefreshTokens(session),
            sessions=UserSessions(session),
            audit=Audit(session),
        )


def audit_event(
    event: str,
    outcome: str,
    *,
    at: int,
    user_id: str | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        event=event,
        outcome=outcome,
        at=at,
        user_id=user_id,
        client_id=client_id,
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
        detail=detail or {},
    )
