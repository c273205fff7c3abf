"""Server-side sessions in the ephemeral store; the cookie holds only a random id."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp.store.ephemeral import EphemeralStore


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, session_id: str | None = None) -> None:
        def on_update(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.session_id = session_id
        self.previous_id: str | None = None
        self.modified = False

    def regenerate(self) -> None:
        """Give the session a new id (at sign-in), so a planted id never becomes authenticated."""
        self.previous_id = self.previous_id or self.session_id
        self.session_id = secrets.token_urlsafe(32)
        self.modified = True

    @property
    def storage_key(self) -> str:
        """The ephemeral-store key of this session's data (a digest: the id itself is never stored)."""
        self.session_id = self.session_id or secrets.token_urlsafe(32)
        return storage_key(self.session_id)

    def end(self) -> None:
        self.clear()
        self.regenerate()


class ServerSessionInterface(SessionInterface):
    """Sessions live `lifetime` seconds once they hold `signed_in_key` (someone proved something);
    until then only `anonymous_lifetime` (a sign-in's), so anonymous visits leave little behind.
    Requests for paths beginning with one of `sessionless_paths` (stylesheets, scripts) never read
    one: they are served while the store is down, so its 503 page is still styled."""

    def __init__(
        self,
        *,
        store: EphemeralStore,
        lifetime: int,
        anonymous_lifetime: int,
        signed_in_key: str,
        cookie_name: str,
        secure: bool,
        sessionless_paths: tuple[str, ...] = (),
    ) -> None:
        self._store = store
        self._lifetime = lifetime
        self._anonymous_lifetime = anonymous_lifetime
        self._signed_in_key = signed_in_key
        self._cookie_name = cookie_name
        self._secure = secure
        self._sessionless_paths = sessionless_paths

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        if request.path.startswith(self._sessionless_paths):
            return ServerSession()
        session_id = request.cookies.get(self._cookie_name)
        if session_id and len(session_id) <= 64:
            raw = self._store.get(storage_key(session_id))
            if raw is not None:
                return ServerSession(json.loads(raw), session_id)
        return ServerSession()

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
        payload = json.dumps(dict(session), separators=(",", ":")).encode()
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
