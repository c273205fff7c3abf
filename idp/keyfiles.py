"""Files in the keys directory, written once with mode 0600 and never logged."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: bytes) -> None:
    """Create `path` readable by its owner only; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def replace_private(path: Path, content: bytes) -> None:
    """Replace `path` in one step (a reader sees the old file or the new one, never a part), mode 0600."""
    partial = path.with_name(f".{path.name}.new")
    partial.unlink(missing_ok=True)
    write_private(partial, content)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)
