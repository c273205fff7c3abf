"""The peer for side-by-side figures: node-oidc-provider, as ../shared/peers/README.md sets it up.

Its code and wrk scripts stay in the peer directory (`--peer-dir`, by default `shared/peers` beside
the checkout); `setup.sh` there installs node-oidc-provider 9.13.3 and wrk into ~/.cache/idp-peer.
Two instances run on the server core: one issuing ES256 JWT access tokens (client credentials,
discovery, JWKS) and one issuing opaque tokens, the only ones it introspects. Each is driven with the
peer's own wrk scripts from the load core, as the provider's rows are.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from server_engines import HOST, LOAD_CORE, SERVER_CORE, Result, free_port, pinned

DEFAULT_PEER_DIR = Path(__file__).resolve().parents[2] / "shared" / "peers"
CLIENT = ("bench", "bench-secret")  # the one client oidc_server.mjs registers


@dataclass(frozen=True)
class Peer:
    home: Path  # where setup.sh installed it, with the wrk scripts
    jwt_port: int
    opaque_port: int
    opaque_token: str
    pids: tuple[int, ...]

    def load(self, row: str, connections: int, duration: float) -> Result:
        """One row's figures: "client credentials", "introspection", "discovery" or "JWKS"."""
        jwt_origin, opaque_origin = f"http://{HOST}:{self.jwt_port}", f"http://{HOST}:{self.opaque_port}"
        script, url, env = {
            "client credentials": ("wrk_client_credentials.lua", f"{jwt_origin}/token", {}),
            "introspection": (
                "wrk_introspect.lua",
                f"{opaque_origin}/token/introspection",
                {"WRK_TOKEN": self.opaque_token},
            ),
            "discovery": ("wrk_report.lua", f"{jwt_origin}/.well-known/openid-configuration", {}),
            "JWKS": ("wrk_report.lua", f"{jwt_origin}/jwks", {}),
        }[row]
        return run_peer_script(self.home, script, url, env, connections, duration)


def run_peer_script(
    home: Path, script: str, url: str, env: dict[str, str], connections: int, duration: float
) -> Result:
    """wrk -t1 on the load core with one of the peer's scripts, which prints a RESULT line."""
    command = [
        *pinned(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "-s",
        str(home / script),
        url,
    ]
    environment = {**os.environ, "PEERBENCH": str(home), **env}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout  # noqa: S603
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    fields = dict(field.split("=", 1) for field in line.split()[1:])
    errors = sum(int(fields[name]) for name in ("non2xx", "connect_err", "read_err", "write_err", "timeout"))
    return {
        "requests": int(fields["requests"]),
        "rps": float(fields["rps"]),
        "p50_ms": float(fields["p50_ms"]),
        "p99_ms": float(fields["p99_ms"]),
        "errors": errors,
    }


def install(peer_dir: Path) -> Path:
    """Runs the peer's setup.sh (node-oidc-provider and wrk); returns where it installed the peer."""
    setup = [shutil.which("bash") or "/bin/bash", str(peer_dir / "setup.sh")]
    installed = subprocess.run(setup, capture_output=True, text=True, check=True)  # noqa: S603
    return Path(installed.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def peer_servers(home: Path, workdir: Path) -> Iterator[Peer]:
    """Both instances, installed in `home`, on the server core until the block ends."""
    with contextlib.ExitStack() as stack:
        ports = {}
        for token_format in ("jwt", "opaque"):
            port = free_port()
            log = stack.enter_context((workdir / f"peer-{token_format}.log").open("w+"))
            process = subprocess.Popen(  # noqa: S603
                [*pinned(SERVER_CORE), "node", "oidc_server.mjs"],
                cwd=home,
                env={
                    **os.environ,
                    "NODE_ENV": "production",
                    "ALG": "ES256",
                    "TOKEN_FORMAT": token_format,
                    "PORT": str(port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process)
            _wait_answering(port, process, log)
            ports[token_format] = (port, process.pid)
        yield Peer(
            home=home,
            jwt_port=ports["jwt"][0],
            opaque_port=ports["opaque"][0],
            opaque_token=_client_credentials_token(ports["opaque"][0]),
            pids=tuple(pid for _, pid in ports.values()),
        )


def _client_credentials_token(port: int) -> str:
    basic = base64.b64encode(":".join(CLIENT).encode()).decode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}/token",
        data=b"grant_type=client_credentials&scope=api%3Aread",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (127.0.0.1 only)
        return str(json.load(response)["access_token"])


def _wait_answering(port: int, process: subprocess.Popen[bytes], log: object) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the peer exited: see {getattr(log, 'name', 'its log')}")
        try:
            discovery = f"http://{HOST}:{port}/.well-known/openid-configuration"
            with urllib.request.urlopen(discovery, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the peer did not answer on port {port} within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
