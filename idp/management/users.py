"""Users: create, find, enable or disable, delete, roles, passwords, factors and sessions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from idp.auth.password_policy import PasswordRejected, check_new_password
from idp.auth.passwords import Passwords
from idp.auth.throttle import Throttle, account_subject
from idp.email_address import AddressRejected, canonical_address
from idp.management.context import Conflict, Invalid, Management, NotFound
from idp.oidc.tokens import note_account_change
from idp.store.tables import Factor, User, UserSession
from idp.words import _

# Letters, digits and . _ @ + - (an email address works as a name), starting with a letter or digit:
# nothing that looks like another name once case, spaces or control characters are folded away.
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")
MAX_PAGE = 200


@dataclass(frozen=True)
class UserPage:
    users: Sequence[User]
    total: int
    offset: int
    limit: int


def validate_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise Invalid(
            f"the user name {username[:160]!r} is not allowed: use 1 to 150 letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )
    return username


def validate_password(management: Management, password: str, *, username: str) -> str:
    """The password policy of the account pages (NIST SP 800-63B 5.1.1.2)."""
    try:
        check_new_password(password, min_length=management.settings.passwords.min_length, username=username)
    except PasswordRejected as rejected:
        raise Invalid(str(rejected)) from None
    return password


def create_user(
    management: Management,
    *,
    username: str,
    password: str,
    email: str | None = None,
    email_verified: bool = False,
    admin: bool = False,
) -> User:
    validate_username(username)
    validate_password(management, password, username=username)
    if email_verified and email is None:
        raise Invalid("email_verified needs an email address")
    store = management.store
    if store.users.by_username(username) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(
        id=str(uuid.uuid4()),
        username=username,
        email=None,
        email_verified=email_verified,
        password_hash=Passwords(management.settings.passwords).hash(password),
        disabled=False,
        created_at=management.now,
        is_admin=admin,
    )
    if email is not None:
        user.email = _admit_address(management, email, user_id=user.id)
    store.users.add(user)
    management.record("user_created", user_id=user.id, detail={"admin": admin})
    return user


def _admit_address(management: Management, email: str, *, user_id: str) -> str:
    """The canonical address, refused when `max_users_per_email` accounts hold it already; the lock lasts
    until the unit of work ends (the five-accounts rule of the account pages)."""
    try:
        address = canonical_address(email)
    except AddressRejected:
        raise Invalid(f"{email[:320]!r} is not an email address like name@example.com") from None
    limit = management.settings.factors.email.max_users_per_email
    management.store.addresses.lock(address)
    if management.store.addresses.holders(address).full_for(user_id, limit=limit):
        raise Conflict(
            f"{address} is already used by {limit} accounts, the most allowed "
            "([factors.email] max_users_per_email)"
        )
    return address


def user_named(management: Management, username: str) -> User:
    user = management.store.users.by_username(username)
    if user is None:
        raise NotFound(_("no user named %(name)s", name=repr(username)))
    return user


def user_with_id(management: Management, user_id: str) -> User:
    user = management.store.users.get(user_id)
    if user is None:
        raise NotFound(_("no user with id %(id)s", id=repr(user_id)))
    return user


def search_users(management: Management, text: str = "", *, offset: int = 0, limit: int = 50) -> UserPage:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"offset must be 0 or more and limit between 1 and {MAX_PAGE}")
    users, total = management.store.users.search(text, offset=offset, limit=limit)
    return UserPage(users=users, total=total, offset=offset, limit=limit)


def set_disabled(management: Management, user: User, *, disabled: bool) -> None:
    """Disabling also ends the user's sessions: nothing signed in outlives it."""
    if disabled:
        _keep_an_administrator(management, user)
    user.disabled = disabled
    _account_changed(management, user)
    if disabled:
        end_sessions(management, user, reason="account disabled")
    management.record("user_disabled" if disabled else "user_enabled", user_id=user.id)


def delete_user(management: Management, user: User) -> None:
    _keep_an_administrator(management, user)
    _account_changed(management, user)
    end_sessions(management, user, reason="account deleted")
    management.record("user_deleted", user_id=user.id, detail={"username": user.username})
    management.store.users.remove(user)


def set_admin(management: Management, user: User, *, admin: bool) -> None:
    """A new administrator's next sign-in enrols an attested key if they hold none."""
    if not admin:
        _keep_an_administrator(management, user)
    user.is_admin = admin
    management.record("user_promoted" if admin else "user_demoted", user_id=user.id)


def _account_changed(management: Management, user: User) -> None:
    """Whether the account may hold tokens changed: its access tokens' records stop answering for
    them (an introspection asks the database instead) until the tokens issued before have expired."""
    note_account_change(
        management.ephemeral, user.id, access_token_lifetime=management.settings.tokens.access_token_lifetime
    )


def _keep_an_administrator(management: Management, user: User) -> None:
    """The last enabled administrator cannot be demoted, disabled or deleted: nobody could administer
    the provider then (through the API or console; the CLI could promote someone again)."""
    if not user.is_admin or user.disabled:
        return
    if set(management.store.users.lock_enabled_administrators()) <= {user.id}:
        raise Conflict(
            _("%(name)s is the last enabled administrator: promote another user first", name=user.username)
        )


def reset_mfa(management: Management, user: User) -> int:
    """Remove every second factor (they enrol again at the next sign-in); returns how many."""
    removed = management.store.factors.remove_all(user.id)
    management.record("mfa_reset", user_id=user.id, detail={"removed": removed})
    return removed


def set_password(management: Management, user: User, password: str, *, temporary: bool = False) -> None:
    """A new password under the policy; the user's sessions end, as when they forget it. A `temporary`
    one is for one sign-in: its password proof is followed at once by the user choosing their own."""
    validate_password(management, password, username=user.username)
    user.password_hash = Passwords(management.settings.passwords).hash(password)
    user.password_must_change = temporary
    end_sessions(management, user, reason="password set by an administrator")
    management.record("password_set", user_id=user.id, detail={"temporary": temporary})


def replace_temporary_password(
    management: Management, user: User, password: str, *, keep_sid: str | None
) -> None:
    """The user's own password in place of the one-time one they just proved, once: of two browsers
    replacing it at once one is refused. Every other session (one that proved the one-time password
    too) ends."""
    validate_password(management, password, username=user.username)
    passwords = Passwords(management.settings.passwords)
    if passwords.verify(stored_hash=user.password_hash, password=password).valid:
        raise Invalid(_("Choose a password other than the one-time one."))
    password_hash = passwords.hash(password)
    if not management.store.users.replace_temporary_password(user.id, password_hash=password_hash):
        raise Conflict(_("The one-time password was replaced already: sign in with the new password."))
    end_sessions(
        management, user, reason="one-time password replaced", chosen=lambda row: row.sid != keep_sid
    )
    management.record("password_changed", user_id=user.id, detail={"replaced": "one-time password"})


def unlock(management: Management, user: User) -> None:
    """Clear the account's password back-off and lock."""
    Throttle(ephemeral=management.ephemeral, settings=management.settings.throttle).unlock(
        account_subject(user.username)
    )
    management.record("account_unlocked", user_id=user.id)


def factors_of(management: Management, user: User) -> Sequence[Factor]:
    return management.store.factors.of_user(user.id)


def sessions_of(management: Management, user: User) -> Sequence[UserSession]:
    return management.store.sessions.of_user(user.id, now=management.now)


def end_user_sessions(management: Management, user: User, *, sid: str | None = None) -> int:
    """End one session of the user (by sid) or all of them; returns how many."""
    ended = end_sessions(
        management, user, reason="ended by an administrator", chosen=lambda row: sid in (None, row.sid)
    )
    if sid is not None and not ended:
        raise NotFound(f"no session {sid!r} of this user")
    management.record("sessions_ended", user_id=user.id, detail={"ended": ended})
    return ended


def end_sessions(
    management: Management,
    user: User,
    *,
    reason: str,
    chosen: Callable[[UserSession], bool] = lambda _row: True,
) -> int:
    """End the chosen sessions of the user: their data deleted (their next request finds no session and
    is signed out) and their clients told. Returns how many were ended."""
    store = management.store
    rows = [row for row in store.sessions.of_user(user.id, now=management.now) if chosen(row)]
    for row in rows:
        management.ephemeral.delete(row.storage_key)
        store.sessions.remove(row.sid)
    if rows:
        management.tell_clients([row.sid for row in rows], reason=reason)
    return len(rows)
