"""Faults (Hardening, part 4): with Redis or PostgreSQL gone, requests fail closed with a plain 503 page
and issue nothing; the provider recovers by itself when the server is back; and a sign-in whose writes
failed midway leaves nothing behind: no code, no token, no factor, no session missing from the list.

Every fault is real: a redis-server of our own killed and started again under a load of sign-ins, a
PostgreSQL database of our own closed to connections, a PostgreSQL backend terminated just before it
commits. The shared Redis and PostgreSQL servers other tests use are never touched.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, Table, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from support.app import Browser, add_client, add_user, code_from, csrf_token, make_app
from support.live import LiveProvider, instance_without_redis, start_provider
from support.oidc_client import (
    Account,
    Attempt,
    Authenticator,
    Client,
    OpenIdProvider,
    enrolment_secret,
    is_enrolment_page,
    is_factor_page,
    is_password_page,
    is_recovery_codes_page,
)
from support.oidc_client import Browser as UserAgent
from support.services import RedisServer
from werkzeug.test import TestResponse

from idp.store.tables import Factor, UserSession
from idp.web import services

PASSWORD = "a long enough password"
UNAVAILABLE = "Temporarily unavailable"
RECOVERY_SECONDS = 20


# -- servers of our own ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnDatabase:
    """A PostgreSQL database of our own on the shared server, which we may close to connections."""

    url: str
    name: str
    admin: Engine  # connected to the server's own database, never to this one

    def close(self) -> None:
        """Refuse new connections and end the open ones, as if the database had gone away."""
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": self.name},
            )

    def reopen(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))

    def factors_of(self, username: str) -> int:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                found = connection.execute(
                    text(
                        "SELECT count(*) FROM factors JOIN users ON users.id = user_id WHERE username = :name"
                    ),
                    {"name": username},
                )
                return int(found.scalar_one())
        finally:
            engine.dispose()


@pytest.fixture
def own_database(_postgres_server: tuple[str, Engine]) -> Iterator[OwnDatabase]:
    server_url, admin = _postgres_server
    name = f"idp_faults_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    yield OwnDatabase(url, name, admin)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- the provider, its accounts, and what a 503 must look like --------------------------------------------


def register(live: LiveProvider) -> Client:
    redirect_uri = "http://127.0.0.1/faults/callback"
    done = live.idp("clients", "create", "--name", "faults", "--redirect-uri", redirect_uri, "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return Client(created["client_id"], redirect_uri, created["client_secret"])


def create_accounts(live: LiveProvider, count: int) -> list[Account]:
    def create(_: int) -> Account:
        account = Account(f"user-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(15))
        done = live.idp(
            "users", "create", account.username, "--email", f"{account.username}@example.test",
            "--password-stdin", stdin=account.password + "\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return account

    with ThreadPoolExecutor(max_workers=min(count, 6)) as pool:
        return list(pool.map(create, range(count)))


def is_unavailable_page(response: requests.Response) -> bool:
    """The plain page of a store failure: 503, HTML, Retry-After, nothing about what failed or where."""
    return (
        response.status_code == 503
        and response.headers.get("Content-Type", "").startswith("text/html")
        and UNAVAILABLE in response.text
        and "Traceback" not in response.text
        and "Retry-After" in response.headers
    )


def health(live: LiveProvider) -> requests.Response:
    return requests.get(f"{live.issuer}/health", timeout=5)


def wait_until_healthy(live: LiveProvider) -> float:
    """Seconds until /health answers 200 five times running (both workers, every pooled connection)."""
    started = time.monotonic()
    healthy_in_a_row = 0
    while healthy_in_a_row < 5:
        assert time.monotonic() - started < RECOVERY_SECONDS, f"no recovery: {health(live).text}"
        healthy_in_a_row = healthy_in_a_row + 1 if health(live).status_code == 200 else 0
        time.sleep(0.1)
    return time.monotonic() - started


def sign_in(agent: UserAgent, client: Client, account: Account) -> tuple[Attempt, requests.Response]:
    """Password, then TOTP (enrolling it first for a new account); returns the last response."""
    attempt = agent.authorize(client)
    page = attempt.page
    if is_password_page(page):
        page = agent.submit(page, username=account.username, password=account.password)
        if is_enrolment_page(page):
            account.authenticator = Authenticator(enrolment_secret(page))
            page = agent.submit(page, code=account.authenticator.next_code())
            if is_recovery_codes_page(page):  # not when the enrolment met an outage
                page = agent.save_recovery_codes(page)
        elif is_factor_page(page):
            assert account.authenticator is not None
            page = agent.submit(page, code=account.authenticator.next_code())
    return attempt, page


def redirected_code(attempt: Attempt, response: requests.Response) -> str | None:
    """The code in a redirect to the client, if the response is one."""
    location = response.headers.get("Location", "")
    if response.is_redirect and location.startswith(attempt.client.redirect_uri + "?"):
        return attempt.callback(response).get("code")
    return None


# -- a load of sign-ins --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the load keeps of a response: never the response itself, which would hold its connection
    open (and a server that counts open connections stops accepting new ones)."""

    status: int
    url: str
    unavailable_page: bool
    traceback: bool
    body: str

    @classmethod
    def of(cls, response: requests.Response) -> Answer:
        text = response.text
        return cls(
            response.status_code, response.url, is_unavailable_page(response), "Traceback" in text, text[:300]
        )


@dataclass
class Iteration:
    """One sign-in attempt of the load: when it ran, and the code and tokens it got, if any."""

    started: float
    finished: float = 0.0
    code: str | None = None  # delivered to the client
    verifier: str | None = None  # the PKCE verifier that goes with the code
    tokens: dict[str, Any] | None = None  # the code redeemed


def redeem(op: OpenIdProvider, client: Client, code: str, verifier: str | None) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    return op.token(client, **form, **({"code_verifier": verifier} if verifier else {}))


@dataclass
class SignInLoad:
    """Threads signing in over and over, each as its own users; a failed attempt starts over afresh."""

    op: OpenIdProvider
    client: Client
    accounts: list[Account]
    threads: int = 3
    iterations: list[Iteration] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> SignInLoad:
        share = len(self.accounts) // self.threads
        for index in range(self.threads):
            mine = self.accounts[index * share : (index + 1) * share]
            worker = threading.Thread(target=self._run, args=(mine,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self, accounts: list[Account]) -> None:
        agents = {account.username: UserAgent(self.op) for account in accounts}
        turn = 0
        while not self._stop.is_set():
            account = accounts[turn % len(accounts)]
            turn += 1
            agent = agents[account.username]
            try:
                iteration = self._sign_in_once(agent, account)
            except BaseException as error:  # reported by the test, not lost in a thread
                with self._lock:
                    self.errors.append(error)
                return
            with self._lock:
                self.iterations.append(iteration)
                self.answers.extend(Answer.of(response) for response in agent.seen)
            agent.seen.clear()
            if iteration.tokens is None:  # the user starts over, in a new browser
                agent.http.close()
                agents[account.username] = UserAgent(self.op)
            time.sleep(0.02)
        for agent in agents.values():
            agent.http.close()

    def _sign_in_once(self, agent: UserAgent, account: Account) -> Iteration:
        iteration = Iteration(started=time.monotonic())
        attempt, last = sign_in(agent, self.client, account)
        iteration.code = redirected_code(attempt, last)
        iteration.verifier = attempt.pkce.verifier if attempt.pkce else None
        if iteration.code is not None:
            exchanged = redeem(self.op, self.client, iteration.code, iteration.verifier)
            agent.seen.append(exchanged)
            if exchanged.status_code == 200:
                iteration.tokens = exchanged.json()
        iteration.finished = time.monotonic()
        return iteration

    def completed_since(self, moment: float) -> list[Iteration]:
        with self._lock:
            return [it for it in self.iterations if it.tokens is not None and it.started >= moment]

    def wait_for_sign_ins(self, count: int, *, since: float, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.completed_since(since)) < count:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"only {len(self.completed_since(since))} sign-ins completed"
            time.sleep(0.1)


def recover(live: LiveProvider, load: SignInLoad, *, sign_ins: int) -> None:
    """The store is back: the provider is healthy again without a restart, and signs users in again."""
    wait_until_healthy(live)
    assert live.process.poll() is None, "the provider recovered without being restarted"
    load.wait_for_sign_ins(sign_ins, since=time.monotonic())


def assert_load_met_the_outage_and_failed_closed(load: SignInLoad) -> None:
    """The load saw the outage as the plain 503 page, never another 5xx or a stack trace."""
    assert not load.errors, load.errors
    assert any(answer.unavailable_page for answer in load.answers), "the load met the outage"
    for answer in load.answers:
        assert answer.status < 500 or answer.unavailable_page, (
            f"{answer.status} at {answer.url}: {answer.body}"
        )
        assert not answer.traceback, answer.url


# -- Redis ---------------------------------------------------------------------------------------------


def test_redis_killed_and_restarted_under_load_fails_closed_and_recovers_without_a_restart(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    live = start_provider(tmp_path, redis_url=own_redis.url)
    try:
        op = OpenIdProvider(live.issuer)
        client = register(live)
        *load_accounts, halfway, unredeemed = create_accounts(live, 11)

        with SignInLoad(op, client, load_accounts) as load:
            load.wait_for_sign_ins(6, since=0)

            # Two sign-ins caught by the crash: one at its enrolment page, one with a code not yet redeemed.
            enrolling = UserAgent(op)
            enrolment = enrolling.submit(
                enrolling.authorize(client).page, username=halfway.username, password=halfway.password
            )
            assert is_enrolment_page(enrolment)
            halfway.authenticator = Authenticator(enrolment_secret(enrolment))
            holder = UserAgent(op)
            attempt, last = sign_in(holder, client, unredeemed)
            code = redirected_code(attempt, last)
            assert code is not None

            crashed = time.monotonic()
            own_redis.kill()
            during = health(live)
            assert during.status_code == 503 and during.json()["failing"] == ["ephemeral"]
            refused_enrolment = enrolling.submit(enrolment, code=halfway.authenticator.next_code())
            assert is_unavailable_page(refused_enrolment)
            assert is_unavailable_page(op.exchange(attempt, code))
            assert is_unavailable_page(UserAgent(op).authorize(client).page)
            time.sleep(2)  # the load keeps trying against the dead store
            restarting = time.monotonic()
            own_redis.start()

            recover(live, load, sign_ins=6)

        assert_load_met_the_outage_and_failed_closed(load)
        inside = [it for it in load.iterations if it.started > crashed and it.finished < restarting]
        assert inside and not any(it.code for it in inside), "no code is issued while the store is down"

        # The code issued before the crash died with the store: it redeems for nothing.
        lost = op.exchange(attempt, code)
        assert lost.status_code == 400 and lost.json()["error"] == "invalid_grant"
        for iteration in load.iterations:
            if iteration.code is not None and iteration.tokens is None:
                assert redeem(op, client, iteration.code, iteration.verifier).status_code == 400

        # The half-finished enrolment stored no factor: starting over asks to enrol again, and works.
        again = UserAgent(op)
        attempt, last = sign_in(again, client, halfway)
        assert any(is_enrolment_page(page) for page in again.seen), "no factor was left from the crash"
        assert op.exchange(attempt, redirected_code(attempt, last) or "").status_code == 200

        # Every sign-in completed before, during or after the outage still holds working tokens.
        completed = [it for it in load.iterations if it.tokens is not None]
        for iteration in completed:
            assert iteration.tokens is not None
            assert op.userinfo(iteration.tokens["access_token"]).status_code == 200
            assert op.refresh(client, iteration.tokens["refresh_token"]).status_code == 200
    finally:
        live.stop()


def test_a_totp_code_spent_before_redis_forgot_everything_stays_spent(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """Redis restarted without persistence (or a replica promoted before a write reached it) forgets what it
    held; the time steps a factor spent are in the database, so a code seen once is refused after."""
    app = make_app(tmp_path, redis={"url": own_redis.url})
    client_id, _client_secret = add_client(app)
    add_user(app, "alice", PASSWORD)
    done, secret = Browser(app.test_client(), client_id).sign_in_with_enrolment("alice", PASSWORD)
    code_from(done)
    seen = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment spent this step's code
    victim = Browser(app.test_client(), client_id)
    code_from(
        victim.submit(victim.submit(victim.authorize(), username="alice", password=PASSWORD), code=seen)
    )

    own_redis.kill()
    own_redis.start()

    attacker = Browser(app.test_client(), client_id)  # who watched the code typed, and knows the password
    factor_page = attacker.submit(attacker.authorize(), username="alice", password=PASSWORD)
    replayed = attacker.submit(factor_page, code=seen)
    assert replayed.status_code == 401 and "That code was used already." in replayed.get_data(as_text=True)


# -- PostgreSQL -------------------------------------------------------------------------------------------


def test_postgresql_unreachable_fails_closed_and_recovers_without_a_restart(
    tmp_path: Path, own_database: OwnDatabase
) -> None:
    live = start_provider(tmp_path, database_url=own_database.url)
    try:
        op = OpenIdProvider(live.issuer)
        client = register(live)
        member, halfway, *load_accounts = create_accounts(live, 5)
        member_agent = UserAgent(op)
        attempt, last = sign_in(member_agent, client, member)
        tokens = op.exchange(attempt, redirected_code(attempt, last) or "").json()
        waiting = member_agent.authorize(client)  # a second code from the session, redeemed later
        waiting_code = waiting.callback(waiting.page)["code"]
        enrolling = UserAgent(op)
        halfway_attempt = enrolling.authorize(client)
        enrolment = enrolling.submit(
            halfway_attempt.page, username=halfway.username, password=halfway.password
        )
        halfway.authenticator = Authenticator(enrolment_secret(enrolment))

        with SignInLoad(op, client, load_accounts, threads=3) as load:
            load.wait_for_sign_ins(3, since=0)
            own_database.close()
            during = health(live)
            assert during.status_code == 503 and during.json()["failing"] == ["database"]
            newcomer = UserAgent(op)
            page = newcomer.authorize(client).page  # may need no database: clients are cached
            assert is_unavailable_page(page) or is_unavailable_page(
                newcomer.submit(page, username=member.username, password=member.password)
            )
            assert is_unavailable_page(enrolling.submit(enrolment, code=halfway.authenticator.next_code()))
            assert is_unavailable_page(op.exchange(waiting, waiting_code))
            assert is_unavailable_page(op.refresh(client, tokens["refresh_token"]))
            assert is_unavailable_page(op.userinfo(tokens["access_token"]))
            discovery = requests.get(f"{live.issuer}/.well-known/openid-configuration", timeout=5)
            assert discovery.status_code == 200, "discovery needs no store"
            time.sleep(1)
            own_database.reopen()

            recover(live, load, sign_ins=3)

        assert_load_met_the_outage_and_failed_closed(load)
        # The code whose redemption met the outage issued nothing then; afterwards it redeems at most once
        # (the failed attempt may already have taken it: then it is spent, and refused in the spec's terms).
        retried = [op.exchange(waiting, waiting_code) for _ in range(2)]
        assert retried[1].status_code == 400 and retried[1].json()["error"] == "invalid_grant"
        assert retried[0].status_code == 200 or retried[0].json()["error"] == "invalid_grant"
        assert op.refresh(client, tokens["refresh_token"]).status_code == 200
        assert op.userinfo(tokens["access_token"]).status_code == 200
        # The enrolment that met the outage stored nothing; the same page, with its secret, still works.
        assert own_database.factors_of(halfway.username) == 0
        enrolled = enrolling.save_recovery_codes(
            enrolling.submit(enrolment, code=halfway.authenticator.next_code())
        )
        code = redirected_code(halfway_attempt, enrolled)
        assert code is not None, enrolled.text[:300]
        assert op.exchange(halfway_attempt, code).status_code == 200
        assert own_database.factors_of(halfway.username) == 11, "the app and its ten recovery codes"
    finally:
        live.stop()


# -- a write that fails midway ----------------------------------------------------------------------------


@dataclass(eq=False)  # an event listener: hashed by identity
class CommitSaboteur:
    """Terminates the PostgreSQL backend of the next commit, just before it is sent: a real failure at
    the worst moment of a request, after it has done all its work."""

    admin: Engine
    armed: bool = False

    def __call__(self, connection: Any) -> None:
        if not self.armed:
            return
        self.armed = False
        backend = connection.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})


@dataclass
class MidwayProvider:
    app: Flask
    client_id: str
    client_secret: str
    saboteur: CommitSaboteur

    def rows(self, table: Table, **where: str) -> int:
        with self.app.app_context(), services().database.unit_of_work() as session:
            query = select(func.count()).select_from(table)
            for column, value in where.items():
                query = query.where(table.c[column] == value)
            return int(session.execute(query).scalar_one())

    def failing(self, send: Callable[[], TestResponse]) -> TestResponse:
        """Send a request whose commit fails; it must answer with the plain 503 page."""
        self.saboteur.armed = True
        response = send()
        assert not self.saboteur.armed, "the request committed nothing: the fault never happened"
        assert response.status_code == 503, response.status_code
        assert UNAVAILABLE in response.get_data(as_text=True)
        assert "Location" not in response.headers and 'name="code"' not in response.get_data(as_text=True)
        return response


@pytest.fixture
def midway(tmp_path: Path, own_database: OwnDatabase) -> Iterator[MidwayProvider]:
    app = make_app(tmp_path, database={"url": own_database.url})
    client_id, client_secret = add_client(app)
    saboteur = CommitSaboteur(own_database.admin)
    with app.app_context():
        engine = services().database.engine
    event.listen(engine, "commit", saboteur)
    yield MidwayProvider(app, client_id, client_secret, saboteur)
    event.remove(engine, "commit", saboteur)
    engine.dispose()


SECRET = re.compile(r'id="secret">([A-Z2-7]+)<')
FACTORS = Factor.__table__
SESSIONS = UserSession.__table__


def test_a_password_step_that_fails_to_commit_leaves_the_sign_in_where_it_was(midway: MidwayProvider) -> None:
    """No proof in the session without the session's row: else a signed-in session the account page
    could neither list nor end."""
    user_id = add_user(midway.app, "alice", PASSWORD)
    browser = Browser(midway.app.test_client(), midway.client_id)
    page = browser.authorize()

    form = {"csrf_token": csrf_token(page), "username": "alice", "password": PASSWORD}

    midway.failing(lambda: browser.client.post(page.request.path, data=form))

    assert midway.rows(SESSIONS, user_id=user_id) == 0
    again = browser.follow(browser.client.get(page.request.path))
    assert 'name="password"' in again.get_data(as_text=True), "the password is asked again"
    enrolment = browser.submit(again, username="alice", password=PASSWORD)
    assert SECRET.search(enrolment.get_data(as_text=True)), "then the enrolment, as before"
    assert midway.rows(SESSIONS, user_id=user_id) == 1


def test_an_enrolment_that_fails_to_commit_stores_no_factor_and_starting_over_enrols_again(
    midway: MidwayProvider,
) -> None:
    user_id = add_user(midway.app, "alice", PASSWORD)
    browser = Browser(midway.app.test_client(), midway.client_id)
    enrolment = browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    secret = SECRET.search(enrolment.get_data(as_text=True))
    assert secret is not None
    form = {"csrf_token": csrf_token(enrolment), "code": pyotp.TOTP(secret.group(1)).now(), "name": "phone"}

    midway.failing(lambda: browser.client.post(enrolment.request.path, data=form))

    assert midway.rows(FACTORS, user_id=user_id) == 0, "no factor stored"
    again = browser.authorize()  # the client starts over
    fresh = SECRET.search(again.get_data(as_text=True))
    assert fresh is not None, "no factor was left behind: the user is asked to enrol, not for a code"
    done = browser.submit(again, code=pyotp.TOTP(fresh.group(1)).at(time.time() + 30), name="phone")
    tokens = browser.redeem(code_from(browser.save_recovery_codes(done)), midway.client_secret)
    assert browser.id_token_claims(tokens["id_token"])["acr"] == "mfa"
    assert midway.rows(FACTORS, user_id=user_id) == 11, "the app and its ten recovery codes"


def test_a_code_whose_issuance_fails_to_commit_is_never_delivered_and_the_next_request_gets_one(
    midway: MidwayProvider,
) -> None:
    add_user(midway.app, "alice", PASSWORD)
    browser = Browser(midway.app.test_client(), midway.client_id)
    done, _secret = browser.sign_in_with_enrolment("alice", PASSWORD)
    code_from(done)

    midway.failing(lambda: browser.authorize())  # the session satisfies it: a code would be issued

    again = browser.authorize()  # the client tries again; the session is intact
    tokens = browser.redeem(code_from(again), midway.client_secret)
    assert browser.id_token_claims(tokens["id_token"])["acr"] == "mfa"


# -- outages in the log ---------------------------------------------------------------------------------


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "idp.store.outages"]


def fail_then_recover(app: Flask, *, failed_requests: int, restore: Callable[[], None]) -> None:
    """Requests while the store is away (each answered 503), then until it is back, then more."""
    client = app.test_client()
    for _ in range(failed_requests):
        assert client.get("/health").status_code == 503
    restore()
    deadline = time.monotonic() + RECOVERY_SECONDS
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "no recovery"
        time.sleep(0.1)
    for _ in range(5):
        assert client.get("/health").status_code == 200


def test_a_redis_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path, redis={"url": own_redis.url})
    caplog.set_level(logging.INFO, logger="idp.store.outages")
    assert app.test_client().get("/health").status_code == 200
    own_redis.kill()
    fail_then_recover(app, failed_requests=12, restore=own_redis.start)
    down, up = outage_lines(caplog)
    assert down.startswith("store down: redis unreachable (") and str(own_redis.port) in down
    assert up == "store up: redis answers again"


def test_a_database_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path, own_database: OwnDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path, database={"url": own_database.url})
    caplog.set_level(logging.INFO, logger="idp.store.outages")
    assert app.test_client().get("/health").status_code == 200
    own_database.close()
    fail_then_recover(app, failed_requests=12, restore=own_database.reopen)
    down, up = outage_lines(caplog)
    assert down.startswith("store down: database unreachable (") and "password" not in down
    assert up == "store up: database answers again"


def test_a_redis_outage_page_stays_styled_for_a_browser_with_a_session(tmp_path: Path) -> None:
    """The stylesheets read no session: a signed-in browser's 503 page keeps its styles and focus rings."""
    provider = start_provider(tmp_path)
    try:
        with instance_without_redis(provider) as broken:
            cookies = {"idp_session": secrets.token_urlsafe(32)}
            page = requests.get(f"{broken.origin}/account", cookies=cookies, timeout=10)
            assert page.status_code == 503 and UNAVAILABLE in page.text
            for path in ("/static/idp.css", "/branding.css"):
                answer = requests.get(broken.origin + path, cookies=cookies, timeout=10)
                assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/css")
    finally:
        provider.stop()
