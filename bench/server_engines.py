"""Compare the two production engines of `idp serve` (gunicorn vs granian) on one worker.

Run by hand from the repository root (nothing here runs in CI):

    /work/venv/bin/python bench/server_engines.py [--rounds 3] [--duration 3] [--connections 4]
        [--database-url URL] [--redis-url URL] [--load-generator auto|wrk|python]

For each engine it writes a fresh temporary config (embedded SQLite/in-process stores unless
--database-url/--redis-url are given), runs `idp init`, registers a confidential
client_credentials client, starts `idp serve --workers 1` pinned to core 0 (`taskset -c 0`), warms
up, then loads two endpoints from another process pinned to core 1, only ever on 127.0.0.1:

    POST /token  grant_type=client_credentials, HTTP basic client authentication
    GET  /.well-known/openid-configuration

The load generator is `wrk` (apt-get install -y wrk) with a small Lua script, or, without wrk, a
Python http.client keep-alive generator. It prints requests/s and p50/p99 latency per engine.
Both providers run side by side and are measured in alternating rounds; the table shows medians.
Figures are only comparable within one run on one machine; keep the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ENGINES = ("gunicorn", "granian")
HOST = "127.0.0.1"
SERVER_CORE, LOAD_CORE = 0, 1
TOKEN, DISCOVERY = "POST /token", "GET /.well-known/openid-configuration"

Request = tuple[str, str, dict[str, str], str]  # method, path, headers, body
Result = dict[str, Any]  # requests, rps, p50_ms, p99_ms, errors, first_error

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.path = "{path}"
wrk.body = {body}
{headers}
"""
# Appended to every wrk script: one machine-readable line with the figures.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def pinned(core: int) -> list[str]:
    """A `taskset` prefix pinning a command to one core, when that is possible here."""
    if shutil.which("taskset") and core < (os.cpu_count() or 1):
        return ["taskset", "-c", str(core)]
    return []


def idp(config: Path, *args: str) -> str:
    command = [sys.executable, "-m", "idp", "--config", str(config), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        sys.exit(f"idp {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


# -- load generators ---------------------------------------------------------------------------------


def run_wrk(port: int, request: Request, connections: int, duration: float, workdir: Path) -> Result:
    method, path, headers, body = request
    lua = WRK_SCRIPT.format(
        method=method,
        path=path,
        body=json.dumps(body) if body else "nil",
        headers="\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
    )
    return run_wrk_lua(port, lua, connections, duration, workdir)


def run_wrk_lua(port: int, lua: str, connections: int, duration: float, workdir: Path) -> Result:
    """wrk on the load core with a Lua script of the caller's (WRK_REPORT is appended to it)."""
    script = workdir / "request.lua"
    script.write_text(lua + WRK_REPORT)
    command = [
        *pinned(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    count, duration_us, p50_us, p99_us, errors = (int(field) for field in line.split()[1:])
    return {
        "requests": count,
        "rps": count / (duration_us / 1e6),
        "p50_ms": p50_us / 1e3,
        "p99_ms": p99_us / 1e3,
        "errors": errors,
    }


def _python_load(port: int, request: Request, connections: int, duration: float) -> Result:
    """`connections` threads, each with a keep-alive connection, sending `request` until the end."""
    method, path, headers, body = request
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + duration

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)  # reconnects by itself after a close
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"status {response.status}")
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as error:
                failures.append(repr(error)[:300])
                conn.close()
            latencies.append(time.perf_counter() - start)

    return summarize(latencies, on_threads(client, connections), failures)


def run_python(port: int, request: Request, connections: int, duration: float, workdir: Path) -> Result:
    return in_pinned_process(
        LOAD_CORE, lambda: _python_load(port, request, connections, duration), timeout=duration + 60
    )


def in_pinned_process(core: int, measure: Callable[[], Result], *, timeout: float) -> Result:
    """What `measure` returns, run in a forked process on `core` (pinned where that is possible), so
    that the load or the operation measured never shares this process's interpreter."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    worker = context.Process(target=_pinned, args=(core, measure, out))
    worker.start()
    result: Result = out.get(timeout=timeout)
    worker.join()
    return result


def _pinned(core: int, measure: Callable[[], Result], out: Any) -> None:
    if pinned(core) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    out.put(measure())


def on_threads(work: Callable[[], None], count: int) -> float:
    """Run `work` on `count` threads at once; the seconds until the last one finished."""
    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def summarize(latencies: list[float], elapsed: float, failures: list[str]) -> Result:
    """Requests/s, p50/p99 in ms, and the failures (counted, the first one kept)."""
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")

    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "errors": len(failures),
        "first_error": failures[0] if failures else "",
    }


# -- one provider per engine -------------------------------------------------------------------------


@contextlib.contextmanager
def provider(engine: str, args: argparse.Namespace) -> Iterator[tuple[Path, int, dict[str, Request]]]:
    """Fresh config, `idp init`, a client_credentials client, `idp serve` on core 0; yields the requests."""
    with tempfile.TemporaryDirectory(prefix=f"idp-bench-{engine}-") as tmp:
        directory, port = Path(tmp), free_port()
        config = directory / "idp.toml"
        config.write_text(
            f'issuer = "http://{HOST}:{port}"\ninstance_dir = "{directory / "instance"}"\n'
            f'[database]\nurl = "{args.database_url}"\n[redis]\nurl = "{args.redis_url}"\n'
            f'[keys]\ndirectory = "{directory / "keys"}"\n'
        )
        idp(config, "init")
        client = json.loads(
            idp(
                config,
                "clients",
                "create",
                "--name",
                f"bench-{engine}",
                "--grant-type",
                "client_credentials",
                "--json",
            )
        )
        basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        requests = {
            TOKEN: (
                "POST",
                "/token",
                {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
                "grant_type=client_credentials",
            ),
            DISCOVERY: ("GET", "/.well-known/openid-configuration", {}, ""),
        }
        with (directory / "serve.log").open("w+") as log:
            server = subprocess.Popen(  # noqa: S603
                [
                    *pinned(SERVER_CORE),
                    sys.executable,
                    "-m",
                    "idp",
                    "--config",
                    str(config),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--engine",
                    engine,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_healthy(engine, server, port, log)
                yield directory, port, requests
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


def wait_healthy(engine: str, server: subprocess.Popen[bytes], port: int, log: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            sys.exit(f"idp serve --engine {engine} exited with {server.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"idp serve --engine {engine} did not become healthy within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per endpoint and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds per endpoint first")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    parser.add_argument("--database-url", default="", help="default: embedded SQLite in a temp dir")
    parser.add_argument("--redis-url", default="", help="default: in-process ephemeral store")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    rounds, duration, warmup = min(args.rounds, 9), min(args.duration, 30.0), min(args.warmup, 10.0)

    use_wrk = args.load_generator == "wrk" or (args.load_generator == "auto" and shutil.which("wrk"))
    load = run_wrk if use_wrk else run_python
    print(
        f"load generator: {'wrk' if use_wrk else 'python http.client'}, {args.connections} connections, "
        f"{rounds} rounds x {duration:g}s per endpoint after {warmup:g}s warm-up; "
        f"server pinned: {bool(pinned(SERVER_CORE))}, load pinned: {bool(pinned(LOAD_CORE))}"
    )

    # Both providers run at once (the idle one costs ~nothing) and take turns round after round, so a
    # change in background load hits both engines alike.
    samples: dict[tuple[str, str], list[Result]] = {}
    with contextlib.ExitStack() as stack:
        providers = {engine: stack.enter_context(provider(engine, args)) for engine in ENGINES}
        for directory, port, requests in providers.values():
            for request in requests.values():
                load(port, request, args.connections, warmup, directory)
        for round_ in range(rounds):
            for engine in ENGINES if round_ % 2 == 0 else ENGINES[::-1]:
                directory, port, requests = providers[engine]
                for endpoint, request in requests.items():
                    result = load(port, request, args.connections, duration, directory)
                    samples.setdefault((engine, endpoint), []).append(result)

    print(
        f"\n{'engine':<9} {'endpoint':<38} {'req/s':>7} {'min-max':>11} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6}"
    )
    rps = {}
    for endpoint in (TOKEN, DISCOVERY):
        for engine in ENGINES:
            runs = samples[engine, endpoint]
            med = {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_ms", "p99_ms")}
            spread = f"{min(r['rps'] for r in runs):.0f}-{max(r['rps'] for r in runs):.0f}"
            rps[engine, endpoint] = med["rps"]
            print(
                f"{engine:<9} {endpoint:<38} {med['rps']:>7.0f} {spread:>11} {med['p50_ms']:>7.2f} "
                f"{med['p99_ms']:>7.2f} {sum(r['errors'] for r in runs):>6.0f}"
            )
    for endpoint in (TOKEN, DISCOVERY):
        fast, slow = sorted(ENGINES, key=lambda e: -rps[e, endpoint])
        print(f"{endpoint}: {fast} is {rps[fast, endpoint] / rps[slow, endpoint]:.2f}x {slow} (median req/s)")


if __name__ == "__main__":
    main()
