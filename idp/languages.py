"""The languages the provider speaks to people, and which of them a language tag names.

Tags are BCP 47 (RFC 5646), as clients send them in `ui_locales` (OIDC Core 3.1.2.1) and browsers in
Accept-Language (RFC 9110 12.5.4); `_` is read as `-` and case does not matter. Chinese is Simplified
unless the tag names another script or a region that writes Traditional characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_TAG_LENGTH = 35  # RFC 5646 4.4.1: 35 characters hold every tag a registry-conforming system needs
WELL_FORMED = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
TRADITIONAL_REGIONS = frozenset({"tw", "hk", "mo"})


@dataclass(frozen=True)
class Language:
    """One language of the pages: `tag` is what <html lang>, the switcher's cookie and discovery say,
    `catalogue` the folder of its translations (a Babel locale identifier), `name` its own name."""

    tag: str
    catalogue: str
    name: str


ENGLISH = Language(tag="en", catalogue="en", name="English")
SIMPLIFIED_CHINESE = Language(tag="zh-Hans-CN", catalogue="zh_Hans_CN", name="简体中文")
LANGUAGES = (ENGLISH, SIMPLIFIED_CHINESE)
DEFAULT = ENGLISH


def language_of(tag: str) -> Language | None:
    """The language `tag` names ("zh", "zh-CN", "zh_Hans_CN", "en-GB"), or None when none of ours."""
    if len(tag) > MAX_TAG_LENGTH or not WELL_FORMED.fullmatch(tag):
        return None
    primary, *subtags = tag.lower().replace("_", "-").split("-")
    if primary == "en":
        return ENGLISH
    if primary != "zh":
        return None
    scripts = [subtag for subtag in subtags if len(subtag) == 4 and subtag.isalpha()]
    if scripts:
        return SIMPLIFIED_CHINESE if scripts[0] == "hans" else None
    return None if TRADITIONAL_REGIONS & set(subtags) else SIMPLIFIED_CHINESE


def N_(text: str) -> str:
    """Marks a text for the catalogue where it is defined (a default, a constant); whoever shows it
    translates it then (idp.words)."""
    return text


def first_supported(tags: Iterable[str]) -> Language | None:
    """The first of `tags` (in the sender's order of preference) naming one of our languages."""
    return next((language for tag in tags if (language := language_of(tag)) is not None), None)
