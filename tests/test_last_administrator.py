"""The last enabled administrator cannot be demoted, disabled or deleted (issue 17): one rule in the
management layer, so the CLI, the admin API and the console all keep it, also under concurrent
changes (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from support.app import make_app, make_settings
from support.live import write_config
from test_admin_api import Admin
from test_cli import idp

from idp.management import users
from idp.management.context import CLI, Conflict, Management
from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.ephemeral import EmbeddedStore
from idp.store.tables import User

PASSWORD = "a long enough password"
Operation = Callable[[Management, User], None]
OPERATIONS: dict[str, Operation] = {
    "demote": lambda management, user: users.set_admin(management, user, admin=False),
    "disable": lambda management, user: users.set_disabled(management, user, disabled=True),
    "delete": users.delete_user,
}


class Operator:
    """The management layer on one database, a unit of work per call, acting as the CLI."""

    def __init__(self, database: Database, directory: Path) -> None:
        self.database = database
        self.settings = make_settings(directory)
        self.ephemeral = EmbeddedStore(directory / "ephemeral.sqlite3")
        self.told: list[str] = []

    def management(self, store: DurableStore) -> Management:
        return Management(
            store=store,
            ephemeral=self.ephemeral,
            settings=self.settings,
            actor=CLI,
            tell_clients=self._told,
        )

    def _told(self, sids: Sequence[str], *, reason: str) -> None:
        self.told.extend(sids)

    def create(self, username: str, *, admin: bool = True, disabled: bool = False) -> None:
        with self.database.unit_of_work() as session:
            management = self.management(DurableStore.over(session))
            created = users.create_user(management, username=username, password=PASSWORD, admin=admin)
            created.disabled = disabled

    def run(
        self, operation: Operation, username: str, *, before: Callable[[], object] = lambda: None
    ) -> None:
        with self.database.unit_of_work() as session:
            management = self.management(DurableStore.over(session))
            user = users.user_named(management, username)
            before()
            operation(management, user)

    def administrators(self) -> set[str]:
        with self.database.unit_of_work() as session:
            return {
                u.username for u in DurableStore.over(session).users.all() if u.is_admin and not u.disabled
            }


@pytest.fixture
def operator(database: Database, tmp_path: Path) -> Operator:
    return Operator(database, tmp_path)


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_last_enabled_administrator_stays(operator: Operator, name: str) -> None:
    operator.create("root")
    operator.create("retired", disabled=True)  # a disabled administrator administers nothing
    with pytest.raises(Conflict, match="root is the last enabled administrator"):
        operator.run(OPERATIONS[name], "root")
    assert operator.administrators() == {"root"}
    operator.create("deputy")
    operator.run(OPERATIONS[name], "root")
    assert operator.administrators() == {"deputy"}


@pytest.mark.parametrize("name", OPERATIONS)
def test_two_administrators_removing_each_other_at_once_leave_one(operator: Operator, name: str) -> None:
    """Both read two administrators before either writes: without the lock both changes would pass."""
    operator.create("ada")
    operator.create("bob")
    both_loaded = threading.Barrier(2, timeout=10)
    outcomes: dict[str, str] = {}

    def remove(username: str) -> None:
        try:
            operator.run(OPERATIONS[name], username, before=both_loaded.wait)
            outcomes[username] = "done"
        except Conflict:
            outcomes[username] = "refused"

    threads = [threading.Thread(target=remove, args=(username,)) for username in ("ada", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes.values()) == ["done", "refused"]
    assert len(operator.administrators()) == 1


def test_the_cli_refuses_with_exit_code_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000)
    assert idp(config, "init").returncode == 0
    created = idp(config, "users", "create", "root", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    for command in ("demote", "disable", "delete"):
        refused = idp(config, "users", command, "root")
        assert (refused.returncode, refused.stderr.strip()) == (
            2,
            "idp: root is the last enabled administrator: promote another user first",
        )


def test_the_api_refuses_with_409(tmp_path: Path, redis_url: str) -> None:
    admin = Admin(make_app(tmp_path, redis={"url": redis_url}))
    for method, path in (("POST", "disable"), ("DELETE", "")):
        refused = admin.call(method, f"/users/{admin.root.id}/{path}".rstrip("/"))
        assert refused.status_code == 409 and "last enabled administrator" in refused.get_json()["detail"]
    assert admin.call("GET", "/users").status_code == 200, "still an administrator"
