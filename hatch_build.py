"""Build hook: the message catalogues compiled where gettext reads them, in every wheel (an editable one
too), so that a translation edited in a .po file is what the built or installed provider shows.

The .mo files are build output: git ignores them, the wheel carries them as artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

CATALOGUES = "idp/translations/*/LC_MESSAGES/messages.po"


class CompileCatalogues(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        for source in sorted(Path(self.root).glob(CATALOGUES)):
            compiled = source.with_suffix(".mo")
            with source.open("rb") as po:
                catalogue = read_po(po)
            with compiled.open("wb") as mo:
                write_mo(mo, catalogue)  # fuzzy entries are left out: they fall back to English
            build_data["artifacts"].append(compiled.relative_to(self.root).as_posix())
