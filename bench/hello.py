"""The ceiling for the provider's endpoints: a bare WSGI "hello" app served the way `idp serve` serves.

    python bench/hello.py --port P      (run by bench/run.py, pinned to the server core)

Granian exactly as idp/serve.py runs it (idp.serve.granian_server, one worker), so the difference to
the provider is the application's own work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BODY = b"hello"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def main() -> None:
    from idp.config import ServerSettings
    from idp.serve import granian_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=ServerSettings().threads)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)  # the workers import "hello:app" too
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    granian_server("hello:app", host=args.host, port=args.port, workers=1, threads=args.threads).serve()


if __name__ == "__main__":
    main()
