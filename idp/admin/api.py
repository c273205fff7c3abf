"""The admin REST API: bearer tokens only (no cookies, no CSRF token), scope admin, the admin acr no
older than [admin] max_age (the pipeline's demand), and a subject who is an administrator now.
Every call is audited with the administrator's subject; bad input is a 400 problem, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from idp.admin import models
from idp.admin.openapi import PREFIX, PROBLEM, document
from idp.admin.operations import OPERATIONS, PATH_PARAMETER, Call, Operation
from idp.auth.pipeline import administrative_token_demand
from idp.management.context import Conflict, ManagementError, NotFound
from idp.oidc.token_lookup import spend_single_use
from idp.resource import AccessToken, Challenge, check, validate_claims
from idp.store.tables import User
from idp.views.management import management_as
from idp.web import audit, durable_store, services

ADMIN_SCOPE = "admin"
NOT_AN_ADMINISTRATOR = Challenge(
    403,
    'Bearer error="insufficient_scope", error_description="the subject is not an active administrator"',
    "insufficient_scope",
)
STATUS_OF: tuple[tuple[type[ManagementError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (ManagementError, 400),
)
TITLES = {400: "Bad request", 404: "Not found", 409: "Conflict"}

blueprint = Blueprint("admin_api", __name__, url_prefix=PREFIX)


class ProviderTokens:
    """Access tokens issued here, valid and not revoked (idp.resource's TokenValidator)."""

    def validate(self, token: str) -> AccessToken | None:
        claims = services().tokens.verify_access_token(token)
        return None if claims is None else validate_claims(claims)

    def spend(self, token: AccessToken) -> bool:
        return spend_single_use(services().ephemeral, token.claims["jti"], expires_at=token.claims["exp"])


def authorize() -> User | Response:
    """The administrator making this call, or the challenge that refuses it (audited)."""
    demand = administrative_token_demand(services().policy)
    outcome = check(
        request.headers.get("Authorization"),
        ProviderTokens(),
        acr=demand.acr_values,
        max_age=demand.max_age,
        scopes=(ADMIN_SCOPE,),
    )
    subject = None if isinstance(outcome, Challenge) else outcome.subject
    user = None if subject is None else durable_store().users.get(subject)
    if user is not None and user.is_admin and not user.disabled:
        return user
    refusal = outcome if isinstance(outcome, Challenge) else NOT_AN_ADMINISTRATOR
    audit(
        "admin_api",
        "refused",
        user_id=user.id if user else None,
        detail={"error": refusal.error or "no_token"},
    )
    return Response(
        refusal.body(),
        status=refusal.status,
        mimetype="application/json",
        headers={"WWW-Authenticate": refusal.www_authenticate, "Cache-Control": "no-store"},
    )


def _view(operation: Operation) -> Callable[..., Response]:
    def view(**path: str) -> Response:
        administrator = authorize()
        if isinstance(administrator, Response):
            return administrator
        management = management_as("api", administrator.id)
        try:
            call = Call(management=management, path=path, query=_query(operation), body=_body(operation))
            response = _answer(operation, operation.run(call))
        except ValidationError as error:
            response = _problem(400, _first_problem(error))
        except ManagementError as error:
            response = _problem(
                next(status for kind, status in STATUS_OF if isinstance(error, kind)), str(error)
            )
        detail = {"operation": operation.operation_id, "status": response.status_code, **path}
        audit(
            "admin_api",
            "success" if response.status_code < 400 else "refused",
            user_id=administrator.id,
            detail=detail,
        )
        return response

    view.__name__ = operation.operation_id
    return view


def _query(operation: Operation) -> BaseModel | None:
    return None if operation.query is None else operation.query.model_validate(request.args.to_dict())


def _body(operation: Operation) -> BaseModel | None:
    return (
        None if operation.body is None else operation.body.model_validate_json(request.get_data() or b"null")
    )


def _answer(operation: Operation, answer: BaseModel | None) -> Response:
    if answer is None:
        return _no_store(Response(status=operation.status))
    return _no_store(Response(answer.model_dump_json(), status=operation.status, mimetype="application/json"))


def _problem(status: int, detail: str) -> Response:
    problem = models.Problem(title=TITLES[status], status=status, detail=detail)
    return _no_store(Response(problem.model_dump_json(), status=status, mimetype=PROBLEM))


def _first_problem(error: ValidationError) -> str:
    """Where the input is wrong and why, without echoing the input (it may be a password)."""
    first = error.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def openapi() -> Response:
    return Response(json.dumps(document()), mimetype="application/json")


VIEWS = tuple(_view(operation) for operation in OPERATIONS)
for operation, view in zip(OPERATIONS, VIEWS, strict=True):
    blueprint.add_url_rule(
        PATH_PARAMETER.sub(r"<\1>", operation.path), operation.operation_id, view, methods=[operation.method]
    )
blueprint.add_url_rule("/openapi.json", "openapi", openapi, methods=["GET"])
