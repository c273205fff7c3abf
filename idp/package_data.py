"""Where the package's data folders are: inside an installed wheel, else at the checkout's top level."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def data_folder(name: str) -> Path:
    """templates/, static/ and examples/ are top-level in the checkout; the wheel maps them into idp/."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
