"""`idp config show | check`: the effective settings with secrets masked, and whether the stores answer."""

from __future__ import annotations

import json
import smtplib
import ssl
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from idp.config import SECRET_KEYS, Settings
from idp.store.database import Database, DatabaseUnavailable
from idp.store.ephemeral import StoreUnavailable, open_ephemeral_store

MASK = "***"


def describe_settings(settings: Settings) -> list[str]:
    """One `section.key = value` line per setting (TOML values), every secret masked."""
    flat = _flatten(settings.model_dump(mode="json"))
    for section, key in SECRET_KEYS:
        flat[f"{section}.{key}"] = mask_secret(f"{section}.{key}", flat[f"{section}.{key}"])
    flat["database.url"] = mask_secret("database.url", settings.database_url)
    return [f"{key} = {json.dumps(value)}" for key, value in flat.items()]


def mask_secret(key: str, value: str) -> str:
    """A URL keeps its scheme, host and database, not its password; any other secret shows as ***."""
    if not value:
        return value
    if key.endswith(".url"):
        return make_url(value).render_as_string(hide_password=True)
    return MASK


def verify_stores(settings: Settings) -> list[str]:
    """One line per store that does not answer: the database, Redis (or the embedded store)."""
    problems = []
    database = Database(settings.database_url)
    try:
        database.ping()
    except DatabaseUnavailable as error:
        problems.append(
            f"database {mask_secret('database.url', settings.database_url)}: {_first_line(error)}"
        )
    finally:
        database.engine.dispose()
    try:
        open_ephemeral_store(settings.redis.url, Path(settings.instance_dir)).ping()
    except (StoreUnavailable, OSError) as error:
        where = mask_secret("redis.url", settings.redis.url) or "embedded store"
        problems.append(f"redis {where}: {_first_line(error)}")
    return problems


def verify_smtp(settings: Settings) -> list[str]:
    """The SMTP server answers a NOOP (no login: that would need the password in a probe)."""
    smtp = settings.smtp
    if not smtp.host:
        return []
    try:
        if smtp.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
            )
        else:
            connection = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with connection:
            connection.noop()
    except (OSError, smtplib.SMTPException) as error:
        return [f"smtp {smtp.host}:{smtp.port}: {_first_line(error)}"]
    return []


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat
