"""Server-side sessions in the ephemeral store; the cookie holds only a random id."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin

from idp.store.ephemeral import EphemeralStore

# The account as the session's last proof found it (idp.views.session_state): dropped by the unit of
# work of a request that changed factors (idp.web), so no page is chosen from what it no longer holds.
ACCOUNT_RECORD_KEY = "account"
# The store keys a request will read beside its session (a sign-in page's sign-in), if any; asked when
# the session is first used, once the request's URL is matched.
ReadAlong = Callable[[Request], list[str]]


class ServerSession(SessionMixin):  # a MutableMapping
    """The browser's session, read from the store on first use: a request that never looks at it (a
    token request, a stylesheet) costs no round trip, and the keys `read_along` names for the request
    come in the same round trip as the session (see `read_beside`)."""

    def __init__(
        self,
        session_id: str | None = None,
        *,
        store: EphemeralStore,
        read_along: Callable[[], list[str]] | None = None,
    ) -> None:
        self.session_id = session_id
        self.previous_id: str | None = None
        self.modified = False
        self._store = store
        self._read_along = read_along
        self._data: dict[str, Any] | None = None if session_id else {}
        self._read: dict[str, bytes | None] = {}  # keys read along, until `read_beside` takes them

    @property
    def data(self) -> dict[str, Any]:
        """The session's values, loaded now if they were not yet (with the keys read along)."""
        if self._data is None:
            assert self.session_id is not None
            along = self._read_along() if self._read_along else []
            raw, *values = self._store.get_many([storage_key(self.session_id), *along])
            self._read = dict(zip(along, values, strict=True))
            self._data = json.loads(raw) if raw is not None else {}
            if raw is None:
                self.session_id = None  # gone from the store: a new session gets a new id
        return self._data

    def read_beside(self, key: str) -> bytes | None:
        """The value of `key`, read in the round trip that loads the session when the request's
        `read_along` names it (taken once: a second read goes to the store), else read now."""
        self.data  # noqa: B018  # loads the session, and the keys read along
        if key in self._read:
            return self._read.pop(key)
        return self._store.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        """The dict's own `get` (the mapping mixin's raised and caught a KeyError for a missing key)."""
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def regenerate(self) -> None:
        """Give the session a new id (at sign-in), so a planted id never becomes authenticated."""
        self.data  # noqa: B018  # what the old id held moves to the new one
        self.previous_id = self.previous_id or self.session_id
        self.session_id = secrets.token_urlsafe(32)
        self.modified = True

    @property
    def storage_key(self) -> str:
        """The ephemeral-store key of this session's data (a digest: the id itself is never stored)."""
        self.data  # noqa: B018  # an id the store no longer knows is not reused
        self.session_id = self.session_id or secrets.token_urlsafe(32)
        return storage_key(self.session_id)

    def end(self) -> None:
        self.clear()
        self.regenerate()


class ServerSessionInterface(SessionInterface):
    """Sessions live `lifetime` seconds once they hold `signed_in_key` (someone proved something);
    until then only `anonymous_lifetime` (a sign-in's), so anonymous visits leave little behind."""

    def __init__(
        self,
        *,
        store: EphemeralStore,
        lifetime: int,
        anonymous_lifetime: int,
        signed_in_key: str,
        cookie_name: str,
        secure: bool,
        read_along: ReadAlong | None = None,
    ) -> None:
        self._store = store
        self._lifetime = lifetime
        self._anonymous_lifetime = anonymous_lifetime
        self._signed_in_key = signed_in_key
        self._cookie_name = cookie_name
        self._secure = secure
        self._read_along = read_along

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        """The session of the cookie's id, read when first used (see ServerSession)."""
        session_id = request.cookies.get(self._cookie_name)
        if not session_id or len(session_id) > 64:
            return ServerSession(store=self._store)
        keys = partial(self._read_along, request) if self._read_along else None
        return ServerSession(session_id, store=self._store, read_along=keys)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        previous = storage_key(session.previous_id) if session.previous_id else None
        if not session.modified:
            if previous:
                self._store.delete(previous)
            return
        if not session:
            ended = [key for key in (previous, session.session_id and storage_key(session.session_id)) if key]
            self._store.delete(*ended)
            response.delete_cookie(self._cookie_name, path="/")
            return
        session.session_id = session.session_id or secrets.token_urlsafe(32)
        payload = json.dumps(session.data, separators=(",", ":")).encode()
        lifetime = self._lifetime if self._signed_in_key in session else self._anonymous_lifetime
        self._store.put(storage_key(session.session_id), payload, ttl=lifetime, replacing=previous)
        response.set_cookie(
            self._cookie_name,
            session.session_id,
            max_age=lifetime,
            httponly=True,
            secure=self._secure,
            samesite="Lax",
            path="/",
        )


def storage_key(session_id: str) -> str:
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()
