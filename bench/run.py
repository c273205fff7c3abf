"""The provider's throughput on one core, each figure as a share of its ceiling (run by hand, never in CI).

    /work/venv/bin/python bench/run.py [--stores postgres|embedded|both] [--duration 5] [--warmup 1]
        [--connections 16] [--sign-in-connections 8] [--users 5000] [--rounds 1]
        [--load-generator auto|wrk|python] [--postgres-url URL] [--redis-url URL] [--profile DIR]
        [--peer [--peer-dir DIR]]

`idp serve --workers 1` (granian) runs pinned to core 0 with `taskset -c 0`, on one configuration
of stores or both (`--stores`, each with `--users` users of its own):
  postgres  a fresh PostgreSQL database (idp_bench_<random>, dropped at the end) and one Redis
            database (default 12, flushed before and after, no other); users written by COPY;
  embedded  the provider's defaults: SQLite in the benchmark's temporary directory and the embedded
            ephemeral store (no database server, no Redis); users written by executemany.
The load comes from core 1 (wrk when installed, else Python), only to 127.0.0.1. Every user has a
TOTP secret the benchmark knows (bench/populate.py).

Measured, each for --duration seconds after --warmup seconds:
  ceilings  a bare WSGI "hello" app on the same engine and core (bench/hello.py), and argon2id
            verifications per second with the configured parameters on that core;
  endpoints client-credentials token, refresh-token grant (chained: each refresh uses the newest
            token of its grant), introspection of a user's access token, discovery, JWKS, and complete
            browserless sign-ins (authorize, password page and form, factor page and form, token:
            6 requests each);
  floors    ES256 signing and verification of an access token (joserfc) on that core: what a
            token or an introspection must cost at least. Each token row shows the largest share
            of hello its signature operation alone would allow.
With --stores both, the two run side by side and alternate row by row within every round; the
tables have a column for each. With --peer, node-oidc-provider (bench/peer.py: set up and started from
../shared/peers) is measured beside them on the same core with its own wrk scripts, in the same
rounds, after our rows of each kind (client credentials with ES256 JWTs, introspection of its opaque
tokens, discovery, JWKS), and a second table gives each configuration's ratios against the issue's
targets, and p99 against p50 for every row.
Each figure is printed with its ratio to its ceiling and the target for that ratio. With --profile,
py-spy then samples each configuration's worker under each dynamic load and a per-package and
per-function summary is printed (raw stacks are kept in DIR).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from harness import (
    DEFAULT_POSTGRES_URL,
    Population,
    Provider,
    Registered,
    RelyingParty,
    SignInFailed,
    children,
    core_times,
    cpu_seconds,
    dedicated_database,
    flush_redis_db,
    prepare,
    register,
    register_relying_party,
    run_chains,
    serving,
    sign_in_user,
    stop,
    worker_memory,
)
from joserfc import jwt
from joserfc.jwk import ECKey
from peer import DEFAULT_PEER_DIR, Peer, install, peer_servers
from populate import bulk_users
from server_engines import (
    HOST,
    LOAD_CORE,
    SERVER_CORE,
    Request,
    Result,
    free_port,
    in_pinned_process,
    pinned,
    run_python,
    run_wrk,
    run_wrk_lua,
    summarize,
    wait_healthy,
)

from idp.auth.passwords import Passwords
from idp.config import PasswordSettings, ServerSettings, load_settings

BENCH = Path(__file__).resolve().parent
MIB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"

REFRESH_LUA = """
local pool = {{{tokens}}}
wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Authorization"] = "{basic}"
wrk.headers["Content-Type"] = "{form}"
request = function()
  local token = table.remove(pool) or "none-left"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end
response = function(status, headers, body)
  local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if token then table.insert(pool, token) end
end
"""


@dataclass(frozen=True)
class Measure:
    """One row of the table: how to load it, and the ceiling and target its figure is judged by."""

    name: str  # the row
    load: Callable[[float], Result]  # duration -> figures
    server: str  # whose figures, and whose worker's CPU time: "hello", "peer" or one of STORES
    target: float | None = None  # the least share of the ceiling's rate
    ceiling: str | None = None
    profiled: bool = False  # with --profile
    unit: str = "req/s"
    signatures: tuple[str, ...] = ()  # the floor operations each request must do (ES256_SIGN, ...)

    @property
    def key(self) -> str:
        """Where its figures are kept: the ceiling by its name, every other row under its server's."""
        return self.name if self.server == "hello" else f"{self.server}: {self.name}"


# -- ceilings ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def hello_server(workdir: Path, *, threads: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """bench/hello.py (granian, one worker, idp serve's options) on the server core."""
    port = free_port()
    with (workdir / "hello.log").open("w+") as log:
        process = subprocess.Popen(  # noqa: S603
            [
                *pinned(SERVER_CORE),
                sys.executable,
                str(BENCH / "hello.py"),
                "--host",
                HOST,
                "--port",
                str(port),
                "--threads",
                str(threads),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy("hello", process, port, log)
            yield port, process
        finally:
            stop(process)


def argon2_rate(settings: PasswordSettings, duration: float) -> Result:
    """Password verifications per second on the server core, as the password step does them."""
    passwords = Passwords(settings)
    stored = passwords.hash("correct horse battery staple")
    return pinned_rate(
        lambda: passwords.verify(stored_hash=stored, password="correct horse battery staple"), duration
    )


def signature_rates(duration: float) -> dict[str, Result]:
    """ES256 signing and verification of an access token with joserfc, as the provider does them: the
    least a token or an introspection can cost, whatever else it does."""
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    header = {"typ": "at+jwt", "alg": "ES256", "kid": "bench"}
    claims = {
        "iss": "http://127.0.0.1:8000",
        "sub": "3f0c6f4e-2d7c-4b8e-9a57-1c2b3d4e5f60",
        "aud": "bench-machine",
        "client_id": "bench-machine",
        "iat": 1_800_000_000,
        "exp": 1_800_000_600,
        "jti": "x1HwX2b9s8hV3kqYzNwU0w",
        "scope": "openid profile",
    }
    token = jwt.encode(header, claims, key, algorithms=["ES256"])
    return {
        ES256_SIGN: pinned_rate(lambda: jwt.encode(header, claims, key, algorithms=["ES256"]), duration),
        ES256_VERIFY: pinned_rate(lambda: jwt.decode(token, key, algorithms=["ES256"]), duration),
    }


def pinned_rate(operation: Callable[[], object], duration: float) -> Result:
    """Calls of `operation` per second, one at a time, in a process of its own on the server core."""
    return in_pinned_process(SERVER_CORE, lambda: _timed_loop(operation, duration), timeout=duration + 60)


def _timed_loop(operation: Callable[[], object], duration: float) -> Result:
    latencies = []
    deadline = time.perf_counter() + duration
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        begun = time.perf_counter()
        operation()
        latencies.append(time.perf_counter() - begun)
    return summarize(latencies, time.perf_counter() - started, [])


# -- the loads --------------------------------------------------------------------------------------


def static_load(
    port: int, request: Request, connections: int, workdir: Path, wrk: bool
) -> Callable[[float], Result]:
    def load(duration: float) -> Result:
        return (run_wrk if wrk else run_python)(port, request, connections, duration, workdir)

    return load


class Users:
    """Hands out users who have not signed in yet (each TOTP step works once per user)."""

    def __init__(self, population: Population) -> None:
        self.population = population
        self.next = 0

    def block(self, size: int) -> range:
        if self.next + size > self.population.count:
            sys.exit(f"out of users after {self.next}; raise --users")
        taken = range(self.next, self.next + size)
        self.next += size
        return taken


def mint(rp: RelyingParty, users: Users, count: int) -> list[dict[str, Any]]:
    """Tokens of `count` fresh grants (real sign-ins; not measured)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        signed = pool.map(lambda index: sign_in_user(rp, users.population, index), users.block(count))
        return [done.tokens for done in signed]


def refresh_load(
    rp: RelyingParty, users: Users, connections: int, workdir: Path, wrk: bool, *, loads: int
) -> Callable[[float], Result]:
    """Each connection refreshes one grant over and over, always with the token the last refresh returned.
    The grants for `loads` runs are minted now, so that no run pays for sign-ins."""
    # One spare a run: wrk calls request() once on its first thread to check the script, spending a token.
    stock = [grant["refresh_token"] for grant in mint(rp, users, (connections + 1) * loads)]

    def load(duration: float) -> Result:
        tokens = [stock.pop() for _ in range(connections + 1)]
        if wrk:
            pool = ", ".join(json.dumps(token) for token in tokens)
            lua = REFRESH_LUA.format(tokens=pool, basic=rp.client.basic, form=FORM)
            return run_wrk_lua(int(rp.origin.rsplit(":", 1)[1]), lua, connections, duration, workdir)
        return run_chains(
            lambda: _refresh_chain(rp, tokens.pop()), connections=connections, duration=duration
        )

    return load


def _refresh_chain(rp: RelyingParty, first: str) -> Callable[[], bool]:
    http, newest = requests.Session(), [first]

    def step() -> bool:
        response = http.post(
            f"{rp.origin}/token",
            data={"grant_type": "refresh_token", "refresh_token": newest[0]},
            headers={"Authorization": rp.client.basic},
            timeout=30,
        )
        if response.status_code != 200:
            return False
        newest[0] = response.json()["refresh_token"]
        return True

    return step


def sign_in_load(
    rp: RelyingParty, users: Users, connections: int, *, most_per_second: float
) -> Callable[[float], Result]:
    """Complete sign-ins from `connections` user agents at once, each with a user new to this run
    (never more per second than argon2id allows: that bounds the users a run may need)."""

    def load(duration: float) -> Result:
        unused = iter(users.block(int(most_per_second * duration * 1.5) + connections * 4))

        def chain() -> Callable[[], bool]:
            def step() -> bool:
                index = next(unused, None)
                if index is None:
                    raise SignInFailed("no unused user left; raise --users")
                sign_in_user(rp, users.population, index)
                return True

            return step

        return run_chains(chain, connections=connections, duration=duration)

    return load


# -- profiling ----------------------------------------------------------------------------------------


def profile(
    worker: int, name: str, load: Callable[[float], Result], duration: float, directory: Path
) -> None:
    """py-spy samples the worker while `load` runs, twice: every busy thread (where requests spend
    their time, waiting on PostgreSQL and Redis included), then only the thread holding the GIL
    (where the Python CPU goes; argon2id and socket waits release the GIL)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("--profile needs py-spy: /work/venv/bin/pip install py-spy")
        return
    for view, extra in (("threads", []), ("gil", ["--gil"])):
        raw = directory / f"{name.split(' (')[0].replace(' ', '-')}.{view}.txt"
        options = ["--rate", "250", "--format", "raw", "--duration", str(round(duration + 1)), *extra]
        recorder = subprocess.Popen(  # noqa: S603
            [py_spy, "record", "--pid", str(worker), "--output", str(raw), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        load(duration)
        recorder.wait(timeout=duration + 60)
        print(f"\n== {name}, {'busy threads' if view == 'threads' else 'GIL holder'} ({raw})")
        print(summarize_stacks(raw))


def summarize_stacks(raw: Path, top: int = 12) -> str:
    """Self time by package, inclusive time of idp's functions, and the heaviest leaf functions."""
    by_package: collections.Counter[str] = collections.Counter()
    in_idp: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, samples = stack.split(";"), int(count)
        total += samples
        by_package[_package(frames[-1])] += samples
        leaves[frames[-1]] += samples
        for frame in set(frames):
            if _package(frame) == "idp":
                in_idp[frame] += samples
    if not total:
        return "  (no samples: py-spy needs ptrace permission, e.g. root or CAP_SYS_PTRACE)"
    packages = ", ".join(f"{name} {n / total:.0%}" for name, n in by_package.most_common(10))
    lines = [f"  {total} samples; self time by package: {packages}", "  idp functions (inclusive):"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in in_idp.most_common(top)]
    lines.append("  heaviest functions (self):")
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in leaves.most_common(top)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """py-spy names a frame `function (package/module.py:line)`: the package, or the module."""
    where = frame[frame.rfind(" (") + 2 :].lstrip("<")
    return where.replace(" ", "/").split("/")[0].split(".py")[0]


# -- the table ---------------------------------------------------------------------------------------


HELLO, ARGON2 = "hello (ceiling)", "argon2id verify (ceiling)"
ES256_SIGN, ES256_VERIFY = "ES256 sign (floor)", "ES256 verify (floor)"
FLOORS = (ES256_SIGN, ES256_VERIFY)
SIGN_INS = "sign-ins (6 requests each)"
REFRESH, CLIENT_CREDENTIALS = "refresh (chained)", "client credentials"
# The configurations of stores (--stores), each with its column in the tables.
STORES = {"embedded": "ours, embedded", "postgres": "ours, PostgreSQL + Redis"}


@dataclass(frozen=True)
class Ours:
    """The provider on one configuration of stores, populated and serving."""

    stores: str  # a key of STORES
    provider: Provider
    rp: RelyingParty
    machine: Registered  # a client-credentials client, the relying party's tokens' resource server
    users: Users


def serve_ours(stack: contextlib.ExitStack, stores: str, tmp: Path, args: argparse.Namespace) -> Ours:
    """The provider on `stores`: "postgres", a fresh PostgreSQL database and the Redis database given;
    "embedded", its defaults (SQLite and the embedded ephemeral store under `tmp`). Populated, and
    served until `stack` closes."""
    on_servers = stores == "postgres"
    database_url = (
        stack.enter_context(dedicated_database(args.postgres_url, "idp_bench_")) if on_servers else ""
    )
    redis_url = args.redis_url if on_servers else ""
    config = prepare(tmp / stores, database_url=database_url, redis_url=redis_url, threads=args.threads)
    relying_party = register_relying_party(config)
    # It introspects the relying party's tokens: registered as their resource server.
    machine = register(
        config,
        "bench-machine",
        *("--grant-type", "client_credentials", "--introspect", relying_party.client_id),
    )
    users = Users(bulk_users(load_settings(config).database_url, count=args.users, config=config))
    provider = stack.enter_context(serving(config))
    return Ours(stores, provider, RelyingParty(provider.origin, relying_party), machine, users)


def our_measures(
    ours: Ours, args: argparse.Namespace, tmp: Path, wrk: bool, *, loads: int, most_sign_ins: float
) -> list[Measure]:
    """One configuration's rows, in the order they are measured (`loads` runs of the refresh each)."""
    rp, port, stores = ours.rp, ours.provider.port, ours.stores
    machine_form = {"Authorization": ours.machine.basic, "Content-Type": FORM}
    access_token = mint(rp, ours.users, 1)[0]["access_token"]

    def static(method: str, path: str, body: str = "") -> Callable[[float], Result]:
        headers = machine_form if method == "POST" else {}
        return static_load(port, (method, path, headers, body), args.connections, tmp, wrk)

    sign_ins = sign_in_load(rp, ours.users, args.sign_in_connections, most_per_second=most_sign_ins)
    refresh = refresh_load(rp, ours.users, args.connections, tmp, wrk, loads=loads)
    return [
        Measure(
            CLIENT_CREDENTIALS,
            static("POST", "/token", "grant_type=client_credentials"),
            *(stores, 0.30, HELLO, True),
            signatures=(ES256_SIGN,),
        ),
        Measure(REFRESH, refresh, stores, 0.25, HELLO, True, signatures=(ES256_SIGN,)),
        Measure(
            "introspection",
            static("POST", "/introspect", f"token={access_token}"),
            *(stores, 0.25, HELLO, True),
            signatures=(ES256_VERIFY,),
        ),
        Measure("discovery", static("GET", "/.well-known/openid-configuration"), stores, 0.90, HELLO, True),
        Measure("JWKS", static("GET", "/jwks.json"), stores, 0.90, HELLO),
        Measure(SIGN_INS, sign_ins, stores, 0.80, ARGON2, True, "sign-ins/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stores",
        choices=[*STORES, "both"],
        default="postgres",
        help="postgres (PostgreSQL + Redis, the default), embedded (SQLite + the embedded store) or both",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (max 30)")
    parser.add_argument("--warmup", type=float, default=1.0, help="discarded seconds before each")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument(
        "--threads",
        type=int,
        default=ServerSettings().threads,
        help="[server] threads: requests a worker runs at once",
    )
    parser.add_argument("--sign-in-connections", type=int, default=8, help="concurrent sign-ins (default 8)")
    parser.add_argument(
        "--users", type=int, default=5000, help="users to create per configuration (one sign-in each)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds over every row; medians are shown")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="flushed: use a free db")
    parser.add_argument("--profile", type=Path, help="then profile the dynamic rows with py-spy into DIR")
    parser.add_argument("--peer", action="store_true", help="measure node-oidc-provider beside it")
    parser.add_argument("--peer-dir", type=Path, default=DEFAULT_PEER_DIR, help="its setup and scripts")
    args = parser.parse_args()
    duration, warmup, rounds = min(args.duration, 30.0), min(args.warmup, 10.0), min(args.rounds, 5)
    configurations = list(STORES) if args.stores == "both" else [args.stores]
    # The peer's setup also installs wrk, so it runs before the load generator is chosen.
    peer_home = install(args.peer_dir) if args.peer else None
    wrk = args.load_generator == "wrk" or (args.load_generator == "auto" and shutil.which("wrk") is not None)

    with contextlib.ExitStack() as stack:
        if "postgres" in configurations:
            flush_redis_db(args.redis_url)
            stack.callback(flush_redis_db, args.redis_url)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idp-bench-")))
        ours = [serve_ours(stack, stores, tmp, args) for stores in configurations]
        hashing = load_settings(ours[0].provider.config).passwords
        print(
            f"load: {'wrk' if wrk else 'python'} on core {LOAD_CORE}, {args.connections} connections "
            f"({args.sign_in_connections} for sign-ins); idp serve --workers 1 (granian) on core "
            f"{SERVER_CORE} (pinned: {bool(pinned(SERVER_CORE))}) on "
            f"{' and '.join(STORES[stores] for stores in configurations)}"
            f"{' (PostgreSQL and Redis unpinned)' if 'postgres' in configurations else ''}; "
            f"argon2id m={hashing.memory_cost} KiB t={hashing.time_cost} p={hashing.parallelism}; "
            f"{warmup:g} s warm-up + {duration:g} s per row, {rounds} round(s)"
        )

        hello_port, hello = stack.enter_context(hello_server(tmp, threads=args.threads))
        workers = {"hello": children(hello.pid)} | {each.stores: each.provider.workers() for each in ours}
        peer: Peer | None = stack.enter_context(peer_servers(peer_home, tmp)) if peer_home else None
        if peer is not None:
            workers["peer"] = list(peer.pids)

        loads = 2 * rounds + (2 if args.profile else 0)
        samples: dict[str, list[Result]] = {ARGON2: [argon2_rate(hashing, duration)]}
        samples |= {name: [result] for name, result in signature_rates(duration).items()}
        most_sign_ins = samples[ARGON2][0]["rps"]
        hello_row = Measure(
            HELLO, static_load(hello_port, ("GET", "/", {}, ""), args.connections, tmp, wrk), "hello"
        )
        measures = [
            hello_row,
            *interleaved(
                [
                    our_measures(each, args, tmp, wrk, loads=loads, most_sign_ins=most_sign_ins)
                    for each in ours
                ],
                peer,
                args.connections,
            ),
        ]
        for round_ in range(rounds):
            if round_:
                samples[ARGON2].append(argon2_rate(hashing, duration))
                for name, result in signature_rates(duration).items():
                    samples[name].append(result)
            for measure in measures:
                measure.load(warmup)
                before, core, started = (
                    cpu_seconds(workers[measure.server]),
                    core_times(SERVER_CORE),
                    time.perf_counter(),
                )
                result = measure.load(duration)
                elapsed = time.perf_counter() - started
                result["server_cpu"] = (cpu_seconds(workers[measure.server]) - before) / elapsed
                (busy, total), (busy_before, total_before) = core_times(SERVER_CORE), core
                result["core_busy"] = (busy - busy_before) / max(1, total - total_before)
                samples.setdefault(measure.key, []).append(result)
                print(f"  {measure.key}: {result['rps']:.1f}/s", file=sys.stderr)

        print_table(measures, samples, configurations)
        if peer is not None:
            print_peer_table(measures, samples, configurations)
        for each in ours:
            for pid in workers[each.stores]:
                memory = worker_memory(pid)
                print(
                    f"idp serve worker on {STORES[each.stores]} (pid {pid}) after the run: "
                    f"RSS {memory['rss'] / MIB:.0f} MiB, PSS {memory['pss'] / MIB:.0f} MiB"
                )

        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            for measure in measures:
                if measure.profiled:
                    profile(workers[measure.server][0], measure.key, measure.load, duration, args.profile)


# -- the peer, side by side -----------------------------------------------------------------------------

PEER = "node-oidc-provider"
# Each row compared with the peer, and the least ratio of ours to the peer's rate the issue asks for.
PEER_TARGETS: dict[str, float | None] = {
    CLIENT_CREDENTIALS: 1.5,
    "introspection": 1.0,
    "discovery": None,
    "JWKS": None,
}
P99_OVER_P50 = 4.0


def interleaved(per_configuration: list[list[Measure]], peer: Peer | None, connections: int) -> list[Measure]:
    """Row by row: each configuration's, then the peer's where it has that row, so that all of them
    alternate within every round."""
    rows: list[Measure] = []
    for same_row in zip(*per_configuration, strict=True):
        rows.extend(same_row)
        name = same_row[0].name
        if peer is not None and name in PEER_TARGETS:
            rows.append(
                Measure(name, lambda duration, row=name: peer.load(row, connections, duration), "peer")
            )
    return rows


def medians(samples: dict[str, list[Result]]) -> dict[str, dict[str, float]]:
    """Each figure's median over the rounds (NaN where a run has no such figure)."""
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu", "core_busy")
    return {
        name: {key: statistics.median(run.get(key, float("nan")) for run in runs) for key in keys}
        for name, runs in samples.items()
    }


def print_peer_table(
    measures: list[Measure], samples: dict[str, list[Result]], configurations: list[str]
) -> None:
    """Each configuration and the peer (medians of the rounds), each configuration's ratio to the peer,
    its refresh against its client credentials, and p99 against p50 for every row."""
    median = medians(samples)
    columns = [*configurations, "peer"]
    labels = [*(STORES[stores] for stores in configurations), PEER]
    print("\n" + f"{'':<20}" + "".join(f" {label:>25}" for label in labels) + "  ratio")
    print(
        f"{'row':<20}"
        + f" {'/s':>10} {'p50/p99 ms':<14}" * len(columns)
        + "  ("
        + " / ".join(labels[:-1])
        + ")"
    )
    for row, target in PEER_TARGETS.items():
        figures = [median[f"{column}: {row}"] for column in columns]
        cells = "".join(f" {f['rps']:>10.1f} {f['p50_ms']:>6.2f}/{f['p99_ms']:<7.2f}" for f in figures)
        ratios = [ours["rps"] / figures[-1]["rps"] for ours in figures[:-1]]
        verdict = (
            "-"
            if target is None
            else f">= {target:g}: " + " / ".join("met" if ratio >= target else "NOT MET" for ratio in ratios)
        )
        print(f"{row:<20}{cells}  {' / '.join(f'{ratio:.2f}' for ratio in ratios)}  {verdict}")
    shares = {
        stores: median[f"{stores}: {REFRESH}"]["rps"] / median[f"{stores}: {CLIENT_CREDENTIALS}"]["rps"]
        for stores in configurations
    }
    print(
        "refresh / our client credentials (target >= 0.5): "
        + "; ".join(
            f"{STORES[stores]} {share:.2f} {'met' if share >= 0.5 else 'NOT MET'}"
            for stores, share in shares.items()
        )
    )
    late = [
        f"{measure.key} ({median[measure.key]['p99_ms'] / median[measure.key]['p50_ms']:.1f}x)"
        for measure in measures
        if median[measure.key]["p99_ms"] > P99_OVER_P50 * median[measure.key]["p50_ms"]
    ]
    print(
        f"p99 at most {P99_OVER_P50:g}x p50: "
        + ("met by every row" if not late else "NOT MET by " + ", ".join(late))
    )


# -- the table ---------------------------------------------------------------------------------------

ROW = "{:<27} {:>9} {:<10} {:>8} {:>8} {:>6} {:>5} {:>5}"
CELL = "{:>9} {:>15} {:>4} {:>4} {:>4} {:<13}"


def print_table(measures: list[Measure], samples: dict[str, list[Result]], configurations: list[str]) -> None:
    """Medians over the rounds: the ceilings and floors, then each row with a column for each
    configuration, each judged figure as a share of its ceiling, against its target.
    `cpu`: the serving worker's CPU time over the wall time (below 100%: it waited for the stores or
    the load, or shared the core); `core`: how busy the server core was, whoever used it."""
    median = medians(samples)

    def cpu_and_core(figures: dict[str, float]) -> list[str]:
        return [
            f"{figures[key]:.0%}" if figures[key] == figures[key] else "-"
            for key in ("server_cpu", "core_busy")
        ]

    print("\n" + ROW.format("", "rate", "unit", "p50 ms", "p99 ms", "errors", "cpu", "core"))
    for name, unit in ((HELLO, "req/s"), (ARGON2, "hashes/s"), *((floor, "ops/s") for floor in FLOORS)):
        figures = median[name]
        errors = sum(run["errors"] for run in samples[name])
        print(
            ROW.format(
                name,
                f"{figures['rps']:.1f}",
                unit,
                f"{figures['p50_ms']:.2f}",
                f"{figures['p99_ms']:.2f}",
                errors,
                *cpu_and_core(figures),
            )
        )

    width = len(CELL.format(*[""] * 6))
    print(
        "\n"
        + f"{'':<38}"
        + "".join(f" | {STORES[stores]:<{width}}" for stores in configurations)
        + " | target"
    )
    heading = CELL.format("rate", "p50/p99 ms", "err", "cpu", "core", "of ceiling")
    print(f"{'row':<27} {'unit':<10}" + f" | {heading}" * len(configurations) + " |")
    for first in (measure for measure in measures if measure.server == configurations[0]):
        cells, failures = [], []
        for stores in configurations:
            key = f"{stores}: {first.name}"
            figures, runs = median[key], samples[key]
            assert first.ceiling is not None and first.target is not None
            share = figures["rps"] / median[first.ceiling]["rps"]
            cells.append(
                CELL.format(
                    f"{figures['rps']:.1f}",
                    f"{figures['p50_ms']:.2f}/{figures['p99_ms']:.2f}",
                    sum(run["errors"] for run in runs),
                    *cpu_and_core(figures),
                    f"{share:.1%} {'met' if share >= first.target else 'NOT MET'}",
                )
            )
            failure = next((run["first_error"] for run in runs if run.get("first_error")), None)
            if failure:
                failures.append(f"{'':<27} {STORES[stores]}, first failure: {failure}")
        target = f">= {first.target:.0%} of {first.ceiling.split(' (')[0]}"
        if first.signatures:
            target += f" (its signature alone caps it at {_cap(first, median):.0%})"
        print(f"{first.name:<27} {first.unit:<10}" + "".join(f" | {cell}" for cell in cells) + f" | {target}")
        for line in failures:
            print(line)


def _cap(measure: Measure, median: dict[str, dict[str, float]]) -> float:
    """The largest share of its ceiling a row could reach if the request did nothing but what hello does
    and its signature operations: 1 / (1 + ceiling rate x the seconds those operations take)."""
    assert measure.ceiling is not None
    seconds = sum(1 / median[floor]["rps"] for floor in measure.signatures)
    return 1 / (1 + median[measure.ceiling]["rps"] * seconds)


if __name__ == "__main__":
    main()
