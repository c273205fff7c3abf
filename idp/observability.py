"""Operations: Prometheus metrics, structured JSON logs that carry a request id."""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `idp serve` (idp/serve.py) for its workers
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SIGN_INS = Counter(
    "idp_sign_ins_total", "Completed sign-in attempts by outcome and acr reached", ["outcome", "acr"]
)
TOKENS = Counter(
    "idp_tokens_issued_total", "Token responses by grant type and status", ["grant_type", "status"]
)
AUDIT_SUPPRESSED = Counter(
    "idp_audit_suppressed_total",
    "Failure audit events not recorded because their address was past its quota, by event",
    ["event"],
)
LATENCY = Histogram(
    "idp_request_duration_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the request id inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        if record.exc_info:
            entry["error"] = record.exc_info[0].__name__ if record.exc_info[0] else "exception"
        return json.dumps(entry)


def configure_logging() -> None:
    """JSON lines on standard error for the idp loggers (exception details stay out of the output)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("idp")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def request_id(offered: str) -> str:
    """The client's X-Request-ID when it is a plausible id, else a new one."""
    return offered if REQUEST_ID.match(offered) else secrets.token_hex(8)


def observe_latency(endpoint: str | None, *, started: float) -> None:
    latency_of(endpoint or "unknown").observe(time.perf_counter() - started)


def latency_of(endpoint: str) -> Histogram:
    """Where an endpoint's latency is recorded: for a caller to look up once, not at every request."""
    return LATENCY.labels(endpoint)


def install(app: Flask, *, metrics_bearer_token: str) -> None:
    """Request ids (X-Request-ID, echoed), latency per endpoint, and /metrics on this port only when a
    bearer token guards it (else 404: a separate listener, idp/serve.py, serves it)."""

    @app.before_request
    def start() -> None:
        g.request_id = request_id(request.headers.get("X-Request-ID", ""))
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if "started" in g:
            observe_latency(request.endpoint, started=g.started)
        return response

    if metrics_bearer_token:

        @app.route("/metrics")
        def metrics() -> Response:
            if not bearer_token_matches(request.headers.get("Authorization", ""), metrics_bearer_token):
                return Response(
                    "a bearer token is required\n",
                    status=401,
                    mimetype="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
                )
            return Response(
                generate_latest(exposition_registry()),
                mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                headers={"Cache-Control": "no-store"},
            )


def bearer_token_matches(authorization: str, expected: str) -> bool:
    """`Authorization: Bearer <token>` (RFC 6750 2.1) compared in constant time."""
    scheme, _, offered = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), expected.encode())


def exposition_registry() -> CollectorRegistry:
    """Every worker's counters added up when `idp serve` runs several (multiprocess mode), else this
    process's own."""
    if not os.environ.get(MULTIPROCESS_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    # prometheus_client leaves this constructor unannotated; it registers itself on `registry`.
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
