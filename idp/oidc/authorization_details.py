"""Rich authorization requests (RFC 9396): the types the operator declares, a request's details
validated against them, their canonical form and hash, and the line each one is shown as.

Canonical JSON here is the details array with object keys sorted, no whitespace, UTF-8 (not escaped
to ASCII), as `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes it. It
equals RFC 8785 (JCS) for details of strings, integers, booleans and nulls; amounts belong in strings
(as RFC 9396's examples write them), where no two writers disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from jsonschema import Draft202012Validator

from idp.config import AuthorizationDetailType

MAX_DETAILS = 10
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class InvalidAuthorizationDetails(OAuth2Error):
    """RFC 9396 5: unknown types, or details their type's schema refuses."""

    error = "invalid_authorization_details"


@dataclass(frozen=True)
class DetailType:
    name: str
    title: str
    acr: str | None
    one_time: bool
    validator: Draft202012Validator


@dataclass(frozen=True)
class Approval:
    """What a grant's user approved: the details, their hash, and whether the token is single use."""

    details: tuple[dict[str, Any], ...]
    hash: str
    one_time: bool

    def to_json(self) -> dict[str, Any]:
        return {"details": list(self.details), "hash": self.hash, "one_time": self.one_time}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Approval:
        return cls(details=tuple(data["details"]), hash=data["hash"], one_time=data["one_time"])

    def claims(self) -> dict[str, Any]:
        """In access tokens and introspection: RFC 9396 9.1 and 9.2, with the approval's hash."""
        return {
            "authorization_details": list(self.details),
            "approval": {"hash": self.hash, "one_time": self.one_time},
        }


class DetailTypes:
    """The `[authorization_details.TYPE]` tables of the settings, ready to validate and display."""

    def __init__(self, settings: Mapping[str, AuthorizationDetailType]) -> None:
        self._types = {
            name: DetailType(
                name=name,
                title=declared.title,
                acr=declared.acr or None,
                one_time=declared.one_time,
                validator=Draft202012Validator(declared.json_schema),
            )
            for name, declared in settings.items()
        }

    @property
    def names(self) -> list[str]:
        """`authorization_details_types_supported` (RFC 9396 10)."""
        return list(self._types)

    def validate(self, raw: str) -> tuple[dict[str, Any], ...]:
        """The `authorization_details` parameter (RFC 9396 2): a JSON array of objects, each of a
        declared type and valid against its schema; InvalidAuthorizationDetails otherwise."""
        try:
            details = json.loads(raw)
        except (ValueError, RecursionError):
            raise InvalidAuthorizationDetails("The authorization_details parameter is not JSON.") from None
        if not isinstance(details, list) or not details:
            raise InvalidAuthorizationDetails("The authorization_details must be a non-empty JSON array.")
        if len(details) > MAX_DETAILS:
            raise InvalidAuthorizationDetails(f"At most {MAX_DETAILS} authorization details are accepted.")
        for position, detail in enumerate(details):
            if not isinstance(detail, dict) or not isinstance(detail.get("type"), str):
                raise InvalidAuthorizationDetails(f"Authorization detail {position} has no type.")
            declared = self._types.get(detail["type"])
            if declared is None:
                raise InvalidAuthorizationDetails(f"Authorization detail {position} has an unknown type.")
            try:
                problem = next(iter(declared.validator.iter_errors(detail)), None)
            except RecursionError:  # a recursive schema over a deeply nested detail
                raise InvalidAuthorizationDetails(
                    f"Authorization detail {position} is nested too deeply."
                ) from None
            if problem is not None:
                where = "/".join(str(part) for part in problem.absolute_path) or "the object"
                raise InvalidAuthorizationDetails(
                    f"Authorization detail {position} ({declared.name}) is invalid at {where}."
                )
        return tuple(details)

    def levels(self, details: Sequence[Mapping[str, Any]]) -> list[str]:
        """The levels the details' types demand (each raises the request's floor)."""
        return [level for detail in details if (level := self._types[detail["type"]].acr)]

    def approval(self, details: Sequence[dict[str, Any]]) -> Approval:
        return Approval(
            details=tuple(details),
            hash=details_hash(details),
            one_time=any(self._types[detail["type"]].one_time for detail in details),
        )

    def lines(self, details: Sequence[Mapping[str, Any]], *, worded: Callable[[str], str]) -> list[str]:
        """Each detail as its type's title says it (plain text: the page escapes it), the title as
        `worded` gives it (in the reader's language)."""
        return [render_title(worded(self._types[detail["type"]].title), detail) for detail in details]


def render_title(title: str, detail: Mapping[str, Any]) -> str:
    """`{field}` replaced by the detail's value: text as it is, anything else as compact JSON."""

    def value(found: re.Match[str]) -> str:
        field = detail.get(found.group(1))
        if field is None:
            return "(none)"
        return field if isinstance(field, str) else json.dumps(field, ensure_ascii=False, sort_keys=True)

    return PLACEHOLDER.sub(value, title)


def canonical_json(details: Sequence[Mapping[str, Any]]) -> bytes:
    """The bytes an approval signs (see the module's docstring)."""
    return json.dumps(list(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def details_hash(details: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the canonical JSON, base64url without padding: the approval hash tokens carry."""
    return base64.urlsafe_b64encode(hashlib.sha256(canonical_json(details)).digest()).rstrip(b"=").decode()
