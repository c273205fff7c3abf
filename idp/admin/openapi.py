"""The admin API's OpenAPI 3.1 document, generated from OPERATIONS and the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from idp.admin import models
from idp.admin.operations import ID_PATTERN, OPERATIONS, Operation

PREFIX = "/admin/api/v1"
REF = "#/components/schemas/{model}"
JSON = "application/json"
PROBLEM = "application/problem+json"
REFUSALS = {
    400: "The request is malformed or breaks a rule (the detail says which)",
    404: "No such item",
    409: "The operation conflicts with the current state",
}


@cache
def document() -> dict[str, Any]:
    """The document served at /admin/api/v1/openapi.json (built once per process)."""
    mode: dict[type[BaseModel], Literal["validation", "serialization"]] = {}
    for operation in OPERATIONS:
        for model in (operation.query, operation.body):
            if model is not None:
                mode[model] = "validation"
        if operation.answer is not None:
            mode[operation.answer] = "serialization"
    mode |= {models.Problem: "serialization", models.BearerError: "serialization"}
    refs, schemas = models_json_schema(list(mode.items()), ref_template=REF)
    components = schemas.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        reference = {model: refs[(model, kind)] for model, kind in mode.items()}
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, reference, components
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Identity provider admin API",
            "version": "1",
            "description": "Bearer access tokens with scope admin, the admin acr and a fresh auth_time "
            "([admin] max_age); others get an RFC 9470 challenge. docs/administration.md.",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": ["admin"]}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _operation(
    operation: Operation, reference: dict[type[BaseModel], dict[str, Any]], components: dict[str, Any]
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": ID_PATTERN},
            }
            for name in operation.path_parameters
        ]
        + _query_parameters(operation.query, reference, components),
        "responses": {
            str(operation.status): _answer(operation.answer, reference),
            **{
                str(status): {
                    "description": REFUSALS[status],
                    "content": {PROBLEM: {"schema": reference[models.Problem]}},
                }
                for status in operation.refusals
            },
            **{
                str(status): {
                    "description": description,
                    "content": {JSON: {"schema": reference[models.BearerError]}},
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                }
                for status, description in (
                    (401, "No token, an invalid one, or too weak or old an authentication (RFC 9470)"),
                    (403, "The token lacks scope admin, or its subject is no administrator"),
                )
            },
        },
    }
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": reference[operation.body]}},
        }
    return described


def _answer(
    answer: type[BaseModel] | None, reference: dict[type[BaseModel], dict[str, Any]]
) -> dict[str, Any]:
    if answer is None:
        return {"description": "Done"}
    return {
        "description": answer.__doc__ or answer.__name__,
        "content": {JSON: {"schema": reference[answer]}},
    }


def _query_parameters(
    query: type[BaseModel] | None,
    reference: dict[type[BaseModel], dict[str, Any]],
    components: dict[str, Any],
) -> list[dict[str, Any]]:
    """One parameter per field of the query model, with the field's schema."""
    if query is None:
        return []
    name = reference[query]["$ref"].rsplit("/", 1)[-1]
    schema = components.pop(name)
    return [
        {"name": field, "in": "query", "required": False, "schema": field_schema}
        for field, field_schema in schema["properties"].items()
    ]
