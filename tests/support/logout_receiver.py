"""The relying parties' back-channel logout endpoints for tests: a real HTTP server in the test process."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, request

from support.live import free_port
from support.step_up import serving


@dataclass
class Receiver:
    """The relying parties' back-channel logout endpoints: /<name> records each logout_token; a
    name in `held` keeps its request open until the test releases it."""

    base: str = ""
    received: dict[str, queue.Queue[str]] = field(default_factory=dict)
    held: dict[str, tuple[threading.Event, threading.Event, threading.Event]] = field(default_factory=dict)

    def uri(self, name: str) -> str:
        self.received.setdefault(name, queue.Queue())
        return f"{self.base}/{name}"

    def hold(self, name: str) -> tuple[threading.Event, threading.Event, threading.Event]:
        """(arrived, release, answered) for requests to /<name>."""
        self.held[name] = (threading.Event(), threading.Event(), threading.Event())
        return self.held[name]

    def next_token(self, name: str, *, within: float = 20) -> str:
        return self.received[name].get(timeout=within)

    def nothing_for(self, name: str) -> bool:
        return self.received[name].empty()

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.post("/<name>")
        def receive(name: str) -> tuple[str, int]:
            self.received.setdefault(name, queue.Queue()).put(request.form["logout_token"])
            if name in self.held:
                arrived, release, answered = self.held[name]
                arrived.set()
                release.wait(20)
                answered.set()
            return "", 200

        return app


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    found = Receiver()
    with serving(found.app(), free_port()) as base:
        found.base = base
        yield found
