"""The audit log, queried by user, client, event and time range, newest first."""

from __future__ import annotations

from collections.abc import Sequence

from idp.management.context import Invalid, Management
from idp.store.tables import AuditEvent

MAX_EVENTS = 500
# The audit table's ids and times are 32-bit integers on PostgreSQL: a bound beyond them is refused,
# never sent to the database to overflow there.
LARGEST_STORED = 2**31 - 1


def query_audit(
    management: Management,
    *,
    user_id: str | None = None,
    client_id: str | None = None,
    event: str | None = None,
    since: int | None = None,
    until: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    if not 1 <= limit <= MAX_EVENTS:
        raise Invalid(f"limit must be between 1 and {MAX_EVENTS}")
    for name, bound in (("since", since), ("until", until), ("before_id", before_id)):
        if bound is not None and not 0 <= bound <= LARGEST_STORED:
            raise Invalid(f"{name} must be between 0 and {LARGEST_STORED}")
    if since is not None and until is not None and since > until:
        raise Invalid("since must not be after until")
    return management.store.audit.query(
        user_id=user_id,
        client_id=client_id,
        event=event,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
