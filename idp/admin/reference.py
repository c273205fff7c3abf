"""`python -m idp.admin.reference > docs/admin-api.md`: the admin API reference, from the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from idp.admin.openapi import JSON, PREFIX, document


def reference() -> str:
    spec = document()
    lines = [
        "# Admin API reference",
        "",
        "Generated from the OpenAPI document (`python -m idp.admin.reference > docs/admin-api.md`); the",
        f"live document is served at `{PREFIX}/openapi.json`. Every call needs `Authorization: Bearer` with",
        "an access token as docs/administration.md describes; refusals are `401`/`403` with",
        "`WWW-Authenticate`, bad input a `400` `application/problem+json` body.",
        "",
    ]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            lines += [f"## `{method.upper()} {PREFIX}{path}`", "", operation["summary"] + ".", ""]
            query = [parameter for parameter in operation["parameters"] if parameter["in"] == "query"]
            if query:
                lines += [
                    "Query: " + ", ".join(f"`{p['name']}` ({_type(p['schema'])})" for p in query) + ".",
                    "",
                ]
            if "requestBody" in operation:
                body = operation["requestBody"]["content"][JSON]["schema"]
                lines += [f"Body: {_schema_name(body)}.", ""]
            answers = [
                f"`{status}`" + (f" {_schema_name(schema)}" if (schema := _json_schema(answer)) else "")
                for status, answer in operation["responses"].items()
            ]
            lines += ["Answers: " + ", ".join(answers) + ".", ""]
    lines += ["## Schemas", ""]
    for name, schema in spec["components"]["schemas"].items():
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        required = set(schema.get("required", []))
        for member, member_schema in schema.get("properties", {}).items():
            optional = "" if member in required else ", optional"
            lines.append(f"- `{member}`: {_type(member_schema)}{optional}")
        lines.append("")
    return "\n".join(lines)


def _json_schema(answer: dict[str, Any]) -> dict[str, Any] | None:
    content = answer.get("content", {})
    for media in content.values():
        found: dict[str, Any] = media["schema"]
        return found
    return None


def _schema_name(schema: dict[str, Any]) -> str:
    return f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{schema['$ref'].rsplit('/', 1)[-1].lower()})"


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _schema_name(schema)
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if "enum" in schema or "const" in schema:
        return " | ".join(json.dumps(value) for value in schema.get("enum", [schema.get("const")]))
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


if __name__ == "__main__":
    print(reference(), end="")
