"""Words people read, in the language of the request they come from (idp.views.language chooses it),
and in English outside a request (the CLI). `make catalogue` finds the texts by these names (and by
idp.languages.N_, which marks a text that is translated later, where it is shown).

Each message is a whole sentence with named values ("%(app)s asks for %(level)s"), never one put
together from fragments, so that every language can order it as it needs.
"""

from __future__ import annotations

from babel.support import NullTranslations
from flask_babel import get_translations

from idp.per_request import once_per_request


@once_per_request
def translations() -> NullTranslations:
    """The reader's catalogue, found once a request: Flask-Babel keeps the request's locale, but finds
    its catalogue again at every call (some sixty Python calls a text)."""
    found: NullTranslations = get_translations()
    return found


def _(text: str, **values: object) -> str:
    """`text` in the reader's language, its %(name)s placeholders filled with `values`."""
    translated: str = translations().ugettext(text)
    return translated % values if values else translated


def ngettext(singular: str, plural: str, count: int, **values: object) -> str:
    """The form of the message for `count` in the reader's language; %(num)d is `count`."""
    translated: str = translations().ungettext(singular, plural, count)
    return translated % {"num": count, **values}
