"""Clients: register, update, rotate the secret, delete; every change passes idp.oidc.clients' rules."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from idp.auth.policy import AssurancePolicy
from idp.management.context import Invalid, Management, NotFound
from idp.oidc.clients import (
    SECRET_AUTH_METHODS,
    ClientRegistrationError,
    LogoutChannel,
    NewClient,
    hash_secret,
    register_client,
)
from idp.store.tables import Client
from idp.words import _

# What an update may change; the rest of a registration (its kind, its keys) is fixed at creation.
UPDATABLE = (
    "name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "scope",
    "default_acr_values",
    "default_max_age",
)


def create_client(management: Management, **registration: Any) -> NewClient:
    """Register a client (`registration`: register_client's arguments); the secret is shown once.
    A client without redirect URIs (a machine, client_credentials) must be asked for by its grant."""
    if not registration.get("redirect_uris") and not registration.get("grant_types"):
        raise Invalid(
            "a client without a redirect URI signs no user in: ask for it explicitly with the "
            "client_credentials grant (--grant-type client_credentials)"
        )
    _check_acr_values(management, registration.get("default_acr_values", ()))
    created = _registered(**registration)
    _check_audiences(management, created.client.introspect_audiences)
    management.store.clients.add(created.client)
    management.record(
        "client_created", client_id=created.client.client_id, detail={"name": created.client.name}
    )
    return created


def client_with_id(management: Management, client_id: str) -> Client:
    client = management.store.clients.get(client_id)
    if client is None:
        raise NotFound(_("no client with id %(id)s", id=repr(client_id)))
    return client


def all_clients(management: Management) -> Sequence[Client]:
    return management.store.clients.all()


def update_client(management: Management, client: Client, **changes: Any) -> None:
    """Change what UPDATABLE names, validated as a registration with the changes would be."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}")
    _check_acr_values(management, changes.get("default_acr_values", ()))
    checked = _registered(**{**registration_of(client), **changes}).client
    for name in changes:
        setattr(client, name, getattr(checked, name))
    management.record("client_updated", client_id=client.client_id, detail={"changed": sorted(changes)})


def rotate_secret(management: Management, client: Client) -> str:
    """A new secret for a client that authenticates with one; the old one stops working (within the
    per-process client cache's few seconds). Returned once, only its hash is stored."""
    if client.token_endpoint_auth_method not in SECRET_AUTH_METHODS:
        raise Invalid(f"the client authenticates with {client.token_endpoint_auth_method}, not a secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    management.record("client_secret_rotated", client_id=client.client_id)
    return secret


def delete_client(management: Management, client: Client) -> None:
    management.record("client_deleted", client_id=client.client_id, detail={"name": client.name})
    management.store.clients.remove(client)


def registration_of(client: Client) -> dict[str, Any]:
    """A stored client as register_client's arguments."""
    public = client.token_endpoint_auth_method == "none"
    return {
        "name": client.name,
        "redirect_uris": client.redirect_uris,
        "public": public,
        "grant_types": client.grant_types,
        "scope": client.scope,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "default_acr_values": client.default_acr_values,
        "default_max_age": client.default_max_age,
        "introspect_audiences": client.introspect_audiences,
        "token_endpoint_auth_method": None if public else client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "request_object_signing_alg": client.request_object_signing_alg,
        "require_pushed_authorization_requests": client.require_pushed_authorization_requests,
        "third_party": client.third_party,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "backchannel_logout": _logout_channel(
            client.backchannel_logout_uri, client.backchannel_logout_session_required
        ),
        "frontchannel_logout": _logout_channel(
            client.frontchannel_logout_uri, client.frontchannel_logout_session_required
        ),
    }


def _logout_channel(uri: str | None, session_required: bool) -> LogoutChannel | None:
    return LogoutChannel(uri=uri, session_required=session_required) if uri else None


def _registered(**registration: Any) -> NewClient:
    try:
        return register_client(**registration)
    except ClientRegistrationError as error:
        raise Invalid(str(error)) from None


def _check_acr_values(management: Management, values: Sequence[str]) -> None:
    policy = AssurancePolicy.from_settings(management.settings)
    unknown = [value for value in values if policy.resolve(value) is None]
    if unknown:
        raise Invalid(f"unknown acr value(s) {unknown}; configured: {policy.acr_values_supported}")


def _check_audiences(management: Management, audiences: Sequence[str]) -> None:
    unknown = [client_id for client_id in audiences if management.store.clients.get(client_id) is None]
    if unknown:
        raise Invalid(f"introspect_audiences names no registered client: {unknown}")
