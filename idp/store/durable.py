"""Repositories over one SQLAlchemy session; they never commit (the unit of work does)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import (
    Executable,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    event,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Dialect, Result
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from idp.store.database import Database
from idp.store.tables import (
    AuditEvent,
    Client,
    Consent,
    Factor,
    FactorKind,
    RefreshToken,
    SessionClient,
    User,
    UserSession,
)


def _lock_until_commit(session: Session, postgresql_lock: Executable) -> None:
    """Hold a lock until the unit of work ends: another unit of work taking the same lock waits, then
    reads what this one committed. PostgreSQL takes `postgresql_lock` (a row or an advisory lock);
    SQLite has one writer at a time, so its write lock is taken now (unless a write already holds it)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(postgresql_lock)
        return
    driver = connection.connection.driver_connection  # pysqlite: a transaction begins at the first write
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _past_the_orm(session: Session, statement: Executable, parameters: Any) -> CursorResult[Any]:
    """Run a statement built once (below) on the unit of work's connection, without the ORM's
    bookkeeping (flushing entities, evaluating criteria against those held in memory): for rows this
    unit of work does not read back. Building a statement at each call cost more than running it."""
    return session.connection().execute(statement, parameters)


def _table(entity: type[Any]) -> Table:
    return cast(Table, entity.__table__)


# The sign-in's statements, built once (with bound parameters) rather than at every call.
_ACCOUNT_WITH_FACTORS = (
    select(User, Factor).outerjoin(Factor, Factor.user_id == User.id).order_by(Factor.created_at)
)
_ACCOUNT_BY_ID = _ACCOUNT_WITH_FACTORS.where(User.id == bindparam("which"))
_ACCOUNT_BY_USERNAME = _ACCOUNT_WITH_FACTORS.where(User.username == bindparam("which"))
_CLAIM_STEP = (
    update(Factor)
    .where(
        Factor.id == bindparam("factor_id"),
        or_(Factor.last_step.is_(None), Factor.last_step < bindparam("step")),
    )
    .values(last_step=bindparam("step"), last_used_at=bindparam("at"))
)
# The sign-in's writes (`_past_the_orm`); each INSERT and the UPDATE set the columns their
# parameters name.
_PURGE_EXPIRED_SESSIONS = (
    delete(UserSession)
    .where(UserSession.user_id == bindparam("user_id"), UserSession.expires_at <= bindparam("now"))
    .returning(UserSession.sid)
)
_ADD_SESSION = insert(UserSession)
# PostgreSQL purges and adds in one statement (both parts see the rows as they were before it);
# SQLite, whose WITH cannot write, runs the two above.
_PURGE_AND_ADD_SESSION = select(_PURGE_EXPIRED_SESSIONS.cte("purged").c.sid).add_cte(
    insert(UserSession)
    .values({column.key: bindparam(column.key) for column in _table(UserSession).columns})
    .cte("added")
)
_UPDATE_SESSION = update(UserSession).where(UserSession.sid == bindparam("which"))
_ADD_REFRESH_TOKEN = insert(RefreshToken)
_RECORD_SESSION_CLIENT = {
    "postgresql": postgresql.insert(SessionClient).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(SessionClient).on_conflict_do_nothing(),
}
_RECORD_AUDIT = insert(AuditEvent)


def _row_values(row: Any) -> dict[str, Any]:
    """The column values set on a new entity (the columns left unset get their defaults)."""
    return {
        column.key: value
        for column in _table(type(row)).columns
        if (value := getattr(row, column.key)) is not None
    }


class Users:
    def __init__(self, session: Session, factors: Factors) -> None:
        self._session = session
        self._factors = factors
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

    def get_with_factors(self, user_id: str) -> User | None:
        """The account and its factors in one statement, both kept for this unit of work (a sign-in
        step reads both)."""
        if user_id in self._loaded:
            return self.get(user_id)
        return self._with_factors(_ACCOUNT_BY_ID, user_id)

    def by_username_with_factors(self, username: str) -> User | None:
        return self._with_factors(_ACCOUNT_BY_USERNAME, username)

    def _with_factors(self, query: Select[User, Factor], which: str) -> User | None:
        rows = self._session.execute(query, {"which": which}).all()
        if not rows:
            return None
        user: User = rows[0][0]
        self._loaded[user.id] = user
        self._factors.remember(user.id, [factor for _, factor in rows if factor is not None])
        return user

    def add(self, user: User) -> None:
        self._session.add(user)
        self._session.flush()

    def replace_temporary_password(self, user_id: str, *, password_hash: str) -> bool:
        """Replace a one-time password, once (one conditional statement: of two concurrent replacements
        one finds it replaced already); False when the password is not a one-time one any more."""
        replaced = self._session.execute(
            update(User)
            .where(User.id == user_id, User.password_must_change.is_(True))
            .values(password_hash=password_hash, password_must_change=False)
            .execution_options(synchronize_session="fetch")
        )
        return _rows_affected(replaced) == 1

    def lock_enabled_administrators(self) -> Sequence[str]:
        """The enabled administrators' ids, locked until the unit of work ends: two changes that could
        each leave none (demote, disable, delete) cannot interleave; the second reads what the first did."""
        enabled = select(User.id).where(User.is_admin.is_(True), User.disabled.is_(False))
        _lock_until_commit(self._session, enabled.with_for_update())
        return self._session.scalars(enabled).all()

    def all(self) -> Sequence[User]:
        return self._session.scalars(select(User).order_by(User.username)).all()

    def search(self, text: str, *, offset: int, limit: int) -> tuple[Sequence[User], int]:
        """A page of the users whose name or email address contains `text` (any case), by name,
        and how many match in all."""
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matching = or_(
            func.lower(User.username).like(pattern, escape="\\"),
            func.lower(func.coalesce(User.email, "")).like(pattern, escape="\\"),
        )
        total = self._session.scalar(select(func.count()).select_from(User).where(matching)) or 0
        page = select(User).where(matching).order_by(User.username).offset(offset).limit(limit)
        return self._session.scalars(page).all(), total

    def remove(self, user: User) -> None:
        """Delete the account; its factors, sessions, consents and refresh tokens go with it (cascade)."""
        self._session.delete(user)
        self._session.flush()


FACTORS_CHANGED = "idp.factors_changed"  # in Session.info: the unit of work added or removed factors


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

    def _changed(self) -> None:
        """Factors are read again after a change, and the unit of work says it made one."""
        self._of_user.clear()
        self._session.info[FACTORS_CHANGED] = True

    def remember(self, user_id: str, factors: Sequence[Factor]) -> None:
        """A user's factors, read with the account (`Users.get_with_factors`)."""
        self._of_user[user_id] = factors

    def lock_of_user(self, user_id: str) -> Sequence[Factor]:
        """The user's factors read afresh, with the account locked until the unit of work ends: a
        change decided on them (keep a second factor, replace the recovery codes) cannot interleave with
        another one of the same account (SELECT ... FOR NO KEY UPDATE of the user's row)."""
        self._of_user.pop(user_id, None)
        account = select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        _lock_until_commit(self._session, account)
        query = select(Factor).where(Factor.user_id == user_id).order_by(Factor.created_at)
        self._of_user[user_id] = self._session.scalars(query.execution_options(populate_existing=True)).all()
        return self._of_user[user_id]

    def by_lookup_key(self, lookup_key: str) -> Factor | None:
        return self._session.scalars(select(Factor).where(Factor.lookup_key == lookup_key)).one_or_none()

    def add(self, factor: Factor) -> None:
        self._changed()
        self._session.add(factor)
        self._session.flush()

    def remove(self, user_id: str, factor_id: str) -> bool:
        self._changed()
        result = self._session.execute(
            delete(Factor).where(Factor.user_id == user_id, Factor.id == factor_id)
        )
        return _rows_affected(result) == 1

    def reseal_secrets(self, reseal: Callable[[bytes], bytes]) -> int:
        """Encrypt every stored factor secret again (TOTP), the rows locked until the unit of work ends;
        returns how many."""
        self._changed()
        query = select(Factor).where(Factor.secret.is_not(None)).with_for_update()
        count = 0
        for factor in self._session.scalars(query):
            if factor.secret is not None:
                factor.secret = reseal(factor.secret)
                count += 1
        self._session.flush()
        return count

    def remove_all(self, user_id: str, kind: str | None = None) -> int:
        self._changed()
        statement = delete(Factor).where(Factor.user_id == user_id)
        if kind is not None:
            statement = statement.where(Factor.kind == kind)
        result = self._session.execute(statement)
        return _rows_affected(result)

    def consume(self, user_id: str, lookup_key: str) -> bool:
        """Delete a single-use factor (a recovery code); True for the one caller that found it."""
        self._changed()
        result = self._session.execute(
            delete(Factor).where(Factor.user_id == user_id, Factor.lookup_key == lookup_key)
        )
        return _rows_affected(result) == 1

    def claim_step(self, factor_id: str, *, step: int, at: int) -> bool:
        """Spend a TOTP time step; True for the one caller that found it newer than every step spent
        before (RFC 6238 5.2: one accepted code per step, never an older one after it). Atomic; past
        the ORM, so the factor held in memory keeps its old step (nothing reads it after the claim)."""
        result = _past_the_orm(self._session, _CLAIM_STEP, {"factor_id": factor_id, "step": step, "at": at})
        return result.rowcount == 1

    def mark_used(self, factor_id: str, at: int, data: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"last_used_at": at} if data is None else {"last_used_at": at, "data": data}
        # No re-read needed: the ORM applies the new values to the factors this session holds.
        self._session.execute(update(Factor).where(Factor.id == factor_id).values(**values))


@dataclass(frozen=True)
class AddressHolders:
    """The accounts holding one email address: bound on the account pages, or as their email."""

    bound: frozenset[str]
    accounts: frozenset[str]

    def full_for(self, user_id: str, *, limit: int) -> bool:
        """Whether `user_id` would make more than `limit` accounts hold the address."""
        return len(self.accounts - {user_id}) >= limit


class Addresses:
    """Email addresses (canonical, see idp.email_address) and the accounts holding them."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def lock(self, address: str) -> None:
        """Lock the address until the unit of work ends, so that whoever binds it next counts the
        accounts this unit of work makes hold it (an advisory lock on PostgreSQL)."""
        key = func.hashtextextended(literal("email:") + address, 0)
        _lock_until_commit(self._session, select(func.pg_advisory_xact_lock(key)))

    def holders(self, address: str) -> AddressHolders:
        """Who holds the address now (one query; under `lock`, nobody else can add to them)."""
        bound = select(Factor.user_id, true()).where(Factor.kind == FactorKind.EMAIL, Factor.name == address)
        named = select(User.id, false()).where(User.email == address)
        rows = self._session.execute(union_all(bound, named)).all()
        return AddressHolders(
            bound=frozenset(user_id for user_id, is_bound in rows if is_bound),
            accounts=frozenset(user_id for user_id, _ in rows),
        )


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

    def remove(self, client: Client) -> None:
        """Delete the client; its consents and refresh tokens go with it (cascade)."""
        self._session.delete(client)
        self._session.flush()


@dataclass(frozen=True)
class HeldRefreshToken:
    """A refresh token, the account holding it, and until when the browser session it was issued from
    lives (None once that session ended or was never indexed)."""

    row: RefreshToken
    holder: User
    session_expires_at: int | None


@dataclass(frozen=True)
class RotatedRefreshToken:
    """What a rotated refresh token's grant carries on to its successor, which has it too."""

    family_id: str
    client_id: str
    user_id: str
    scope: str
    requested_scope: str | None
    authentication: dict[str, Any]
    sid: str | None
    offline: bool


_CARRIED = [field.name for field in fields(RotatedRefreshToken)]


class _Rotation:
    """`rotate_refresh_token`'s statements, built once (Core, on the tables): claim a usable token,
    add its successor, or both in one statement (PostgreSQL)."""

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[str, ...]] = {}
        tokens, users, sessions = _table(RefreshToken), _table(User), _table(UserSession)
        carried = [tokens.c[name] for name in _CARRIED]
        now = bindparam("now", type_=Integer)
        self.claim = (
            update(tokens)
            .where(
                tokens.c.token_hash == bindparam("claimed_hash"),
                tokens.c.client_id == bindparam("claimant"),
                tokens.c.rotated.is_(False),
                tokens.c.revoked.is_(False),
                tokens.c.expires_at > now,
                tokens.c.dpop_jkt.is_(None),
                select(users.c.id)
                .where(users.c.id == tokens.c.user_id, users.c.disabled.is_(False))
                .exists(),
                or_(
                    tokens.c.offline.is_(True),
                    select(sessions.c.sid)
                    .where(sessions.c.sid == tokens.c.sid, sessions.c.expires_at > now)
                    .exists(),
                ),
            )
            .values(rotated=true())
            .returning(*carried)
        )
        successor: dict[str, ColumnElement[Any]] = {
            "token_hash": bindparam("successor_hash", type_=String),
            "issued_at": now,
            "expires_at": bindparam("successor_expires_at", type_=Integer),
            "rotated": false(),
            "revoked": false(),
            "dpop_jkt": null(),
        }
        self.successor = insert(tokens).values(
            {
                **{column.key: bindparam(f"kept_{column.key}", type_=column.type) for column in carried},
                **successor,
            }
        )
        claimed = self.claim.cte("claimed")
        kept: dict[str, ColumnElement[Any]] = {column.key: claimed.c[column.key] for column in carried}
        # What the request asked for stays what the grant's next refresh may repeat (none: its scope).
        kept["requested_scope"] = func.coalesce(
            func.nullif(claimed.c.requested_scope, literal_column("''")), claimed.c.scope
        )
        added = {**kept, **successor}
        self.in_one_statement = (
            insert(tokens).from_select(list(added), select(*added.values())).returning(*carried)
        )

    def compiled(self, dialect: Dialect) -> tuple[str, ...]:
        """The statements for the dialect, compiled once with named parameters: run on a DBAPI cursor
        they skip SQLAlchemy's per-execution work (three quarters of a rotation's CPU, measured).
        PostgreSQL: the one statement; SQLite (whose WITH cannot write): the claim and the successor."""
        if dialect.name not in self._compiled:
            statements: list[ClauseElement]
            if dialect.name == "postgresql":
                statements, named = [self.in_one_statement], dialect  # psycopg's style names them
            else:
                statements, named = [self.claim, self.successor], sqlite.dialect(paramstyle="named")
            self._compiled[dialect.name] = tuple(str(each.compile(dialect=named)) for each in statements)
        return self._compiled[dialect.name]


_ROTATION = _Rotation()


def rotate_refresh_token(
    database: Database, token_hash: str, *, client_id: str, successor_hash: str, now: int, lifetime: int
) -> RotatedRefreshToken | None:
    """Replace a usable refresh token of `client_id` with its successor (`successor_hash`, issued
    `now`, living `lifetime` seconds), as a unit of work of its own: on PostgreSQL in one statement on
    an autocommit connection (atomic on its own, one round trip); on SQLite (whose WITH cannot write)
    in two, in a transaction shared with the process's concurrent rotations (`write_together`: one
    commit for them all). None, and nothing changed, unless the token is current (neither rotated
    nor revoked, unexpired), bound to no DPoP key, of an enabled account, and offline or of a
    browser session that still lives: a concurrent rotation of the same token waits for this one and
    then finds it rotated."""
    parameters = {
        "claimed_hash": token_hash,
        "claimant": client_id,
        "now": now,
        "successor_hash": successor_hash,
        "successor_expires_at": now + lifetime,
    }
    dialect = database.engine.dialect
    if dialect.name == "postgresql":
        (in_one_statement,) = _ROTATION.compiled(dialect)
        with database.autocommit_cursor() as cursor:
            cursor.execute(in_one_statement, parameters)
            row = cursor.fetchone()
        return None if row is None else RotatedRefreshToken(*row)
    claim, successor = _ROTATION.compiled(dialect)

    def rotate(cursor: Any) -> RotatedRefreshToken | None:
        claimed = cursor.execute(claim, parameters).fetchone()
        if claimed is None:
            return None
        kept = dict(zip(_CARRIED, claimed, strict=True))
        kept["requested_scope"] = kept["requested_scope"] or kept["scope"]
        cursor.execute(successor, {**parameters, **{f"kept_{name}": value for name, value in kept.items()}})
        # As SQLite stores them: JSON as text, a boolean as 0 or 1.
        return RotatedRefreshToken(
            **{**kept, "authentication": json.loads(kept["authentication"]), "offline": bool(kept["offline"])}
        )

    return database.write_together(rotate)


class Consents:
    """What users allowed clients to receive: one row per user and client."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, user_id: str, client_id: str) -> Consent | None:
        return self._session.get(Consent, (user_id, client_id))

    def grant(self, *, user_id: str, client_id: str, scopes: Iterable[str], at: int) -> None:
        """Record that the user allowed the client `scopes` at `at`, in place of what was recorded
        before (one statement: two tabs allowing at once both succeed)."""
        earlier = self._session.get(Consent, (user_id, client_id))
        values = {
            "user_id": user_id,
            "client_id": client_id,
            "scope": " ".join(sorted(set(scopes))),
            "granted_at": at,
        }
        insert = postgresql.insert if self._session.get_bind().dialect.name == "postgresql" else sqlite.insert
        statement = insert(Consent).values(**values)
        self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[Consent.user_id, Consent.client_id],
                set_={"scope": statement.excluded.scope, "granted_at": statement.excluded.granted_at},
            )
        )
        if earlier is not None:
            self._session.expire(earlier)  # the statement bypassed the ORM: read the row again

    def of_user(self, user_id: str, *, granted_since: int) -> Sequence[tuple[Consent, Client]]:
        """The user's consents still remembered, newest first, each with its client."""
        query = (
            select(Consent, Client)
            .join(Client, Client.client_id == Consent.client_id)
            .where(Consent.user_id == user_id, Consent.granted_at >= granted_since)
            .order_by(Consent.granted_at.desc())
        )
        return [(consent, client) for consent, client in self._session.execute(query).all()]

    def revoke(self, user_id: str, client_id: str) -> bool:
        result = self._session.execute(
            delete(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
        )
        return _rows_affected(result) == 1


class RefreshTokens:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, token: RefreshToken) -> None:
        """Past the ORM: nothing reads the new token back in the unit of work that adds it."""
        _past_the_orm(self._session, _ADD_REFRESH_TOKEN, _row_values(token))

    def with_holder(self, token_hash: str) -> HeldRefreshToken | None:
        """The token, the account holding it and its session's end, in one query (None when the token
        or the account is gone)."""
        query = (
            select(RefreshToken, User, UserSession.expires_at)
            .join(User, User.id == RefreshToken.user_id)
            .outerjoin(UserSession, UserSession.sid == RefreshToken.sid)
        )
        found = self._session.execute(query.where(RefreshToken.token_hash == token_hash)).one_or_none()
        return None if found is None else HeldRefreshToken(found[0], found[1], found[2])

    def offline_of_user(self, user_id: str, *, now: int) -> Sequence[tuple[RefreshToken, Client]]:
        """The current token of each of the user's offline grants (OIDC Core 11), with its client."""
        query = (
            select(RefreshToken, Client)
            .join(Client, Client.client_id == RefreshToken.client_id)
            .where(
                RefreshToken.user_id == user_id,
                RefreshToken.offline.is_(True),
                RefreshToken.rotated.is_(False),
                RefreshToken.revoked.is_(False),
                RefreshToken.expires_at > now,
            )
            .order_by(RefreshToken.issued_at.desc())
        )
        return [(token, client) for token, client in self._session.execute(query)]

    def claim_for_rotation(self, token_hash: str) -> bool:
        """Mark the token rotated; True only for the one caller that found it current (atomic)."""
        result = self._session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.rotated.is_(False),
                RefreshToken.revoked.is_(False),
            )
            .values(rotated=true())
        )
        return _rows_affected(result) == 1

    def families_of(self, user_id: str, client_id: str) -> Sequence[str]:
        """The grants (refresh-token families) a client still holds for a user."""
        query = select(RefreshToken.family_id).where(
            RefreshToken.user_id == user_id,
            RefreshToken.client_id == client_id,
            RefreshToken.revoked.is_(False),
        )
        return self._session.scalars(query.distinct()).all()

    def live_families_of(self, user_id: str, *, now: int) -> list[str]:
        """The families of a user whose newest token is still usable (not revoked, not expired)."""
        query = select(RefreshToken.family_id).where(
            RefreshToken.user_id == user_id,
            RefreshToken.rotated.is_(False),
            RefreshToken.revoked.is_(False),
            RefreshToken.expires_at > now,
        )
        return sorted(set(self._session.scalars(query)))

    def session_bound_families(self, sid: str) -> list[str]:
        """The grants issued from one browser session that end with it (not offline_access, not revoked)."""
        query = select(RefreshToken.family_id).where(
            RefreshToken.sid == sid, RefreshToken.offline.is_(False), RefreshToken.revoked.is_(False)
        )
        return sorted(set(self._session.scalars(query)))

    def revoke_family(self, family_id: str) -> None:
        self._session.execute(
            update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True)
        )


class UserSessions:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: UserSession) -> Sequence[str]:
        """Index a new session, purging the user's expired ones; returns the purged sessions' sids (their
        clients are to be told the sessions ended)."""
        purging = {"user_id": row.user_id, "now": row.created_at}
        if self._session.get_bind().dialect.name == "postgresql":
            every_column = {column.key: getattr(row, column.key) for column in _table(UserSession).columns}
            purged = _past_the_orm(self._session, _PURGE_AND_ADD_SESSION, {**every_column, **purging})
            return purged.scalars().all()
        expired = _past_the_orm(self._session, _PURGE_EXPIRED_SESSIONS, purging).scalars().all()
        _past_the_orm(self._session, _ADD_SESSION, _row_values(row))
        return expired

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

    def update(self, sid: str, *, storage_key: str | None = None, acr: str | None = None) -> None:
        """Change the session's row in one statement: the key its data moved to (its id changed at a
        proof), the acr its last sign-in reached. A row ended meanwhile stays gone."""
        values = {name: value for name, value in (("storage_key", storage_key), ("acr", acr)) if value}
        if values:
            _past_the_orm(self._session, _UPDATE_SESSION, {"which": sid, **values})


class SessionClients:
    """Which clients received tokens in which browser session (the logout channels' audience)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, *, sid: str, client_id: str, user_id: str, at: int) -> None:
        """Remember the client for the session; once (one statement: concurrent token requests agree)."""
        values = {"sid": sid, "client_id": client_id, "user_id": user_id, "first_at": at}
        dialect = self._session.get_bind().dialect.name
        _past_the_orm(self._session, _RECORD_SESSION_CLIENT[dialect], values)

    def take(self, sid: str) -> Sequence[tuple[SessionClient, Client]]:
        """The session's clients, each with its registration, forgotten in the same unit of work."""
        query = (
            select(SessionClient, Client)
            .join(Client, Client.client_id == SessionClient.client_id)
            .where(SessionClient.sid == sid)
            .order_by(SessionClient.first_at)
        )
        found = [(row, client) for row, client in self._session.execute(query)]
        self._session.execute(delete(SessionClient).where(SessionClient.sid == sid))
        return found


AUDIT_ROWS = "idp.audit_rows"  # in Session.info: the unit of work's events, until they are written
AUDIT_COLUMNS = ("at", "event", "outcome", "user_id", "client_id", "ip", "user_agent", "detail")


class Audit:
    """Events are written in one INSERT when the unit of work commits (or before it reads events),
    past the ORM; rolled back with it, unless recorded again (idp.web keeps a failed request's)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, recorded: AuditEvent) -> None:
        row = {column: getattr(recorded, column) for column in AUDIT_COLUMNS}
        self._session.info.setdefault(AUDIT_ROWS, []).append(row)

    def record_all(self, events: list[AuditEvent]) -> None:
        for recorded in events:
            self.record(recorded)

    def write_recorded(self) -> None:
        rows = self._session.info.pop(AUDIT_ROWS, None)
        if rows:  # several rows go as one batch (psycopg's pipeline: one round trip)
            _past_the_orm(self._session, _RECORD_AUDIT, rows)

    def of_user(self, user_id: str, limit: int = 50) -> Sequence[AuditEvent]:
        self.write_recorded()
        query = (
            select(AuditEvent)
            .where(AuditEvent.user_id == user_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        return self._session.scalars(query).all()

    def query(
        self,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        event: str | None = None,
        since: int | None = None,
        until: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEvent]:
        """Events matching every given filter, newest first; `before_id` pages back from an event."""
        self.write_recorded()
        conditions = [
            condition
            for condition, given in (
                (AuditEvent.user_id == user_id, user_id is not None),
                (AuditEvent.client_id == client_id, client_id is not None),
                (AuditEvent.event == event, event is not None),
                (AuditEvent.at >= (since or 0), since is not None),
                (AuditEvent.at <= (until or 0), until is not None),
                (AuditEvent.id < (before_id or 0), before_id is not None),
            )
            if given
        ]
        query = select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc()).limit(limit)
        return self._session.scalars(query).all()


@event.listens_for(Session, "before_commit")
def _write_recorded_audit(session: Session) -> None:
    Audit(session).write_recorded()


@event.listens_for(Session, "after_soft_rollback")
def _forget_recorded_audit(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(AUDIT_ROWS, None)


@dataclass(frozen=True)
class DurableStore:
    """The repositories of one unit of work."""

    users: Users
    factors: Factors
    addresses: Addresses
    clients: Clients
    consents: Consents
    refresh_tokens: RefreshTokens
    sessions: UserSessions
    audit: Audit
    session_clients: SessionClients

    @classmethod
    def over(cls, session: Session) -> DurableStore:
        factors = Factors(session)
        return cls(
            users=Users(session, factors),
            factors=factors,
            addresses=Addresses(session),
            clients=Clients(session),
            consents=Consents(session),
            refresh_tokens=RefreshTokens(session),
            sessions=UserSessions(session),
            audit=Audit(session),
            session_clients=SessionClients(session),
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


def _rows_affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (DML runs to a CursorResult, which Session.execute's type hides)."""
    return cast(CursorResult[Any], result).rowcount
