"""Every admin API operation, declared once: method, path, input and answer models, and the
management call it makes. The Flask routes (idp.admin.api) and the OpenAPI document
(idp.admin.openapi) are both generated from OPERATIONS."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from idp.admin import models
from idp.management import audit, clients, keys, users
from idp.management.context import Management

ModelType = TypeVar("ModelType", bound=BaseModel)
# Path parameters: ids as the provider mints them (UUIDs, URL-safe random strings, key ids).
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Call:
    """One request as an operation sees it: validated path, query and body."""

    management: Management
    path: Mapping[str, str]
    query: BaseModel | None
    body: BaseModel | None

    def query_as(self, model: type[ModelType]) -> ModelType:
        assert isinstance(self.query, model)
        return self.query

    def body_as(self, model: type[ModelType]) -> ModelType:
        assert isinstance(self.body, model)
        return self.body


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below /admin/api/v1, OpenAPI style: /users/{user_id}
    operation_id: str
    summary: str
    tag: str
    run: Callable[[Call], BaseModel | None]
    answer: type[BaseModel] | None  # None: 204 No Content
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None

    @property
    def path_parameters(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)

    @property
    def refusals(self) -> tuple[int, ...]:
        """The problem statuses it may answer: 400 for bad input, 404 for an unknown item, 409 for a
        conflict with the current state."""
        found = (404,) if self.path_parameters else ()
        return (400, *found, 409)


# -- users ---------------------------------------------------------------------------------------


def _user(call: Call) -> models.User:
    return models.User.model_validate(users.user_with_id(call.management, call.path["user_id"]))


def _search_users(call: Call) -> models.UserPage:
    search = call.query_as(models.UserSearch)
    page = users.search_users(call.management, search.q, offset=search.offset, limit=search.limit)
    return models.UserPage.model_validate(page)


def _create_user(call: Call) -> models.User:
    new = call.body_as(models.NewUser)
    created = users.create_user(
        call.management,
        username=new.username,
        password=new.password,
        email=new.email,
        email_verified=new.email_verified,
    )
    return models.User.model_validate(created)


def _disable(call: Call) -> None:
    users.set_disabled(
        call.management, users.user_with_id(call.management, call.path["user_id"]), disabled=True
    )


def _enable(call: Call) -> None:
    users.set_disabled(
        call.management, users.user_with_id(call.management, call.path["user_id"]), disabled=False
    )


def _delete_user(call: Call) -> None:
    users.delete_user(call.management, users.user_with_id(call.management, call.path["user_id"]))


def _reset_mfa(call: Call) -> models.Count:
    user = users.user_with_id(call.management, call.path["user_id"])
    return models.Count(count=users.reset_mfa(call.management, user))


def _set_password(call: Call) -> None:
    user = users.user_with_id(call.management, call.path["user_id"])
    new = call.body_as(models.NewPassword)
    users.set_password(call.management, user, new.password, temporary=new.temporary)


def _factors(call: Call) -> models.Factors:
    user = users.user_with_id(call.management, call.path["user_id"])
    found = users.factors_of(call.management, user)
    return models.Factors(factors=[models.Factor.model_validate(factor) for factor in found])


def _sessions(call: Call) -> models.Sessions:
    user = users.user_with_id(call.management, call.path["user_id"])
    found = users.sessions_of(call.management, user)
    return models.Sessions(sessions=[models.Session.model_validate(row) for row in found])


def _end_sessions(call: Call) -> models.Count:
    user = users.user_with_id(call.management, call.path["user_id"])
    return models.Count(count=users.end_user_sessions(call.management, user, sid=call.path.get("sid")))


# -- clients -------------------------------------------------------------------------------------


def _client(call: Call) -> models.Client:
    return models.Client.model_validate(clients.client_with_id(call.management, call.path["client_id"]))


def _clients(call: Call) -> models.Clients:
    found = clients.all_clients(call.management)
    return models.Clients(clients=[models.Client.model_validate(row) for row in found])


def _create_client(call: Call) -> models.ClientSecret:
    created = clients.create_client(call.management, **call.body_as(models.NewClient).model_dump())
    return models.ClientSecret(client_id=created.client.client_id, client_secret=created.secret)


def _update_client(call: Call) -> models.Client:
    client = clients.client_with_id(call.management, call.path["client_id"])
    clients.update_client(
        call.management, client, **call.body_as(models.ClientChanges).model_dump(exclude_unset=True)
    )
    return models.Client.model_validate(client)


def _rotate_secret(call: Call) -> models.ClientSecret:
    client = clients.client_with_id(call.management, call.path["client_id"])
    return models.ClientSecret(
        client_id=client.client_id, client_secret=clients.rotate_secret(call.management, client)
    )


def _delete_client(call: Call) -> None:
    clients.delete_client(call.management, clients.client_with_id(call.management, call.path["client_id"]))


# -- audit and keys ------------------------------------------------------------------------------


def _audit(call: Call) -> models.AuditEvents:
    found = audit.query_audit(call.management, **call.query_as(models.AuditSearch).model_dump())
    return models.AuditEvents(events=[models.AuditEvent.model_validate(event) for event in found])


def _keys(call: Call) -> models.Keys:
    found = keys.list_keys(Path(call.management.settings.keys.directory))
    return models.Keys(keys=[models.Key.model_validate(key) for key in found])


def _rotate_keys(call: Call) -> models.Keys:
    keys.rotate_keys(call.management, tuple(call.body_as(models.KeyRotation).algorithms))
    return _keys(call)


def _retire_key(call: Call) -> None:
    keys.retire(call.management, call.path["kid"])


OPERATIONS = (
    Operation("GET", "/users", "listUsers", "Search users by name or email, a page at a time", "users",
              _search_users, models.UserPage, query=models.UserSearch),
    Operation("POST", "/users", "createUser", "Create a user (password policy, name syntax, address rules)",
              "users", _create_user, models.User, status=201, body=models.NewUser),
    Operation("GET", "/users/{user_id}", "showUser", "Show a user", "users", _user, models.User),
    Operation("DELETE", "/users/{user_id}", "deleteUser", "Delete a user, their factors, sessions and tokens",
              "users", _delete_user, None, status=204),
    Operation("POST", "/users/{user_id}/disable", "disableUser", "Disable a user and end their sessions",
              "users", _disable, None, status=204),
    Operation("POST", "/users/{user_id}/enable", "enableUser", "Enable a disabled user", "users", _enable,
              None, status=204),
    Operation("POST", "/users/{user_id}/reset-mfa", "resetMfa",
              "Remove every second factor; the user enrols again at the next sign-in", "users", _reset_mfa,
              models.Count),
    Operation("PUT", "/users/{user_id}/password", "setPassword",
              "Set a password (the policy applies), or a one-time one; ends their sessions", "users",
              _set_password, None, status=204, body=models.NewPassword),
    Operation("GET", "/users/{user_id}/factors", "listFactors", "List a user's factors", "users", _factors,
              models.Factors),
    Operation("GET", "/users/{user_id}/sessions", "listSessions", "List a user's signed-in sessions", "users",
              _sessions, models.Sessions),
    Operation("DELETE", "/users/{user_id}/sessions", "endSessions", "End every session of a user", "users",
              _end_sessions, models.Count),
    Operation("DELETE", "/users/{user_id}/sessions/{sid}", "endSession", "End one session of a user", "users",
              _end_sessions, models.Count),
    Operation("GET", "/clients", "listClients", "List clients", "clients", _clients, models.Clients),
    Operation("POST", "/clients", "createClient", "Register a client; its secret is answered once", "clients",
              _create_client, models.ClientSecret, status=201, body=models.NewClient),
    Operation("GET", "/clients/{client_id}", "showClient", "Show a client", "clients", _client,
              models.Client),
    Operation("PATCH", "/clients/{client_id}", "updateClient",
              "Change redirect URIs, scopes, grants, acr defaults or the name", "clients", _update_client,
              models.Client, body=models.ClientChanges),
    Operation("POST", "/clients/{client_id}/secret", "rotateClientSecret",
              "A new client secret, answered once; the old one stops working", "clients", _rotate_secret,
              models.ClientSecret),
    Operation("DELETE", "/clients/{client_id}", "deleteClient", "Delete a client, its consents and tokens",
              "clients", _delete_client, None, status=204),
    Operation("GET", "/audit", "queryAudit", "Audit events by user, client, event, time; newest first",
              "audit", _audit, models.AuditEvents, query=models.AuditSearch),
    Operation("GET", "/keys", "listKeys", "List the signing keys", "keys", _keys, models.Keys),
    Operation("POST", "/keys/rotate", "rotateKeys",
              "A new active key per algorithm (used after a restart); old keys stay published", "keys",
              _rotate_keys, models.Keys, body=models.KeyRotation),
    Operation("DELETE", "/keys/{kid}", "retireKey", "Retire a key (not an active one): drop it from the JWKS",
              "keys", _retire_key, None, status=204),
)  # fmt: skip
