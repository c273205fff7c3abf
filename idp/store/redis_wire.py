"""Redis commands sent on redis-py's own connections (its parser, hiredis when installed), past its client:
the client's per-command layers (pool locks, retry wrapper, observability, argument filtering) took about
40% of a lean introspection's CPU."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.connection import AbstractConnection, Connection, parse_url
from redis.exceptions import NoScriptError, RedisError, ResponseError

Argument = str | bytes | int
Command = tuple[Argument, ...]
Answer = TypeVar("Answer")


class Script:
    """A Lua script, sent by its SHA1 (EVALSHA) while Redis has it cached."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha1 = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RedisWire:
    """Commands on a pool of redis-py connections, each taken by one caller at a time; what fails raises
    redis-py's errors (ConnectionError, TimeoutError, ResponseError and its kinds) and is never resent.

    A connection is made on first need (none exists before a worker process forks, so none is shared
    across processes) and kept while idle: list `append` and `pop` are atomic, so threads share the
    pool without a lock, and it holds no more connections than were ever in use at once.

    A command is never resent after a failure: whether Redis ran it before the connection broke cannot
    be known, and a script that counted an attempt must not count it twice. A pooled connection Redis
    closed while it was idle (a restart, CLIENT KILL, an idle timeout) is found before use instead, as
    redis-py's own pool finds it: the peer's close makes the socket readable, and one non-blocking poll
    before each command sees it; such a connection is dropped for the next idle one or a new one. One
    that breaks while in use is dropped, never pooled again (half a reply may be waiting on it).
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self._connection_class, self._options = connection_options(url, timeout=timeout)
        self._idle: list[AbstractConnection] = []

    def command(self, *command: Argument) -> Any:
        """One command's reply, in one round trip."""
        return self._exchange(lambda connection: _ask(connection, command))

    def transaction(self, *commands: Command) -> list[Any]:
        """The replies of `commands` run in one MULTI/EXEC (atomic), in one round trip."""
        return self._exchange(lambda connection: _transact(connection, commands))

    def script(self, script: Script, *, keys: Sequence[str], args: Sequence[Argument]) -> Any:
        """The script's reply; one more round trip (EVAL) only when Redis does not have it cached (after
        a restart or SCRIPT FLUSH), which caches it again."""
        return self._exchange(lambda connection: _run(connection, script, keys, args))

    def _exchange(self, exchange: Callable[[AbstractConnection], Answer]) -> Answer:
        connection = self._ready_connection()
        try:
            answer = exchange(connection)
        except BaseException:
            connection.disconnect()  # a reply may still be coming on it
            raise
        self._idle.append(connection)
        return answer

    def _ready_connection(self) -> AbstractConnection:
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return self._connection_class(**self._options)
            if _untouched(connection):
                return connection
            connection.disconnect()


def connection_options(url: str, *, timeout: float) -> tuple[type[AbstractConnection], dict[str, Any]]:
    """The connection class and options a URL asks for (its own options win, as with
    redis.Redis.from_url); ValueError, naming the option, for one a connection does not take (a
    client pool's, such as max_connections), so that the settings refuse it at start."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    options |= parse_url(url)
    connection_class: type[AbstractConnection] = options.pop("connection_class", Connection)
    try:
        connection_class(**options)  # made, not connected: no I/O
    except TypeError as error:
        raise ValueError(f"an option a Redis connection does not take: {error}") from None
    return connection_class, options


def _untouched(connection: AbstractConnection) -> bool:
    """Nothing arrived on the idle connection: neither the end of the stream (Redis closed it) nor a
    stray reply."""
    try:
        return not connection.can_read()
    except RedisError:  # the end of the stream, or the poll failed
        return False


def _ask(connection: AbstractConnection, command: Command) -> Any:
    connection.send_packed_command(connection.pack_command(*command), check_health=False)
    return connection.read_response()


def _transact(connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    connection.send_packed_command(
        connection.pack_commands([("MULTI",), *commands, ("EXEC",)]), check_health=False
    )
    for _ in range(len(commands) + 1):
        connection.read_response()  # OK, then QUEUED for each: a refused one (OOM) raises here
    replies: list[Any] = connection.read_response()
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _run(
    connection: AbstractConnection, script: Script, keys: Sequence[str], args: Sequence[Argument]
) -> Any:
    try:
        return _ask(connection, ("EVALSHA", script.sha1, len(keys), *keys, *args))
    except NoScriptError:  # the whole error reply was read: the connection is ready for the next
        return _ask(connection, ("EVAL", script.source, len(keys), *keys, *args))
