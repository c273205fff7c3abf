"""Production serving: gunicorn (default) or granian, each worker building its own app from settings."""

from __future__ import annotations

import os
from typing import Any

from idp.config import CONFIG_ENV, Settings


def serve(
    settings: Settings, *, host: str, port: int, workers: int, engine: str, config_path: str | None
) -> None:
    """Run until stopped; SIGTERM drains in-flight requests (graceful shutdown)."""
    if config_path:
        os.environ[CONFIG_ENV] = str(config_path)
    if engine == "granian":
        _serve_granian(host, port, workers)
    else:
        _serve_gunicorn(host, port, workers)


def _serve_gunicorn(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "sync",
                "graceful_timeout": 20,
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


def _serve_granian(host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian("idp.wsgi:app", address=host, port=port, workers=workers, interface=Interfaces.WSGI).serve()
