"""Production serving: granian (default, measured faster) or gunicorn; each worker builds its own app."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from idp.config import CONFIG_ENV, ConfigError, Settings

# prometheus_client's multiprocess mode; set before any worker imports the client.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRACEFUL_SECONDS = 20
HEADER_READ_TIMEOUT_MS = 10_000  # a client that sends no request head within 10 s is dropped


def serve(
    settings: Settings, *, host: str, port: int, workers: int, engine: str, config_path: str | None
) -> None:
    """Run until stopped; SIGTERM drains in-flight requests (graceful shutdown)."""
    if config_path:
        os.environ[CONFIG_ENV] = str(config_path)
    _prepare_metrics(Path(settings.instance_dir) / f"metrics-{port}")
    if settings.metrics.address is not None:
        _start_metrics_listener(*settings.metrics.address)
    if engine == "gunicorn":
        _serve_gunicorn(host, port, workers)
    else:
        granian_server(
            "idp.wsgi:app", host=host, port=port, workers=workers, threads=settings.server.threads
        ).serve()


def _prepare_metrics(directory: Path) -> None:
    """Workers share their counters through files (prometheus_client multiprocess mode), fresh at
    start; one directory per port, so instances sharing an instance directory keep theirs apart."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(directory.resolve())


def _start_metrics_listener(host: str, port: int) -> None:
    """/metrics on a port of its own, served by a thread of this (the workers' parent) process, which
    reads every worker's counters: the way prometheus_client documents multiprocess mode."""
    from prometheus_client import start_http_server

    from idp.observability import exposition_registry

    try:
        start_http_server(port, addr=host, registry=exposition_registry())
    except OSError as error:
        raise ConfigError(
            f"config error: metrics.listen: cannot listen on {host}:{port}: {error.strerror}"
        ) from None


def _serve_gunicorn(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "sync",
                "graceful_timeout": GRACEFUL_SECONDS,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            from idp.wsgi import app

            return app

    Application().run()


def granian_server(target: str, *, host: str, port: int, workers: int, threads: int) -> Any:
    """Granian as `idp serve` runs it (bench/hello.py serves its ceiling app with the same options)."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    return Granian(
        target,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.WSGI,
        # Requests a worker runs at once ([server] threads). No backpressure: granian counts open
        # connections against it, so idle keep-alive connections would starve everyone.
        blocking_threads=threads,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
