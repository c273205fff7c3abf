"""Words people read, in the language of the request they come from (idp.views.language chooses it),
and in English outside a request (the CLI). `make catalogue` finds the texts by these names (and by
idp.languages.N_, which marks a text that is translated later, where it is shown).

Each message is a whole sentence with named values ("%(app)s asks for %(level)s"), never one put
together from fragments, so that every language can order it as it needs.
"""

from __future__ import annotations

from flask_babel import gettext as babel_gettext
from flask_babel import ngettext as babel_ngettext


def _(text: str, **values: object) -> str:
    """`text` in the reader's language, its %(name)s placeholders filled with `values`."""
    return str(babel_gettext(text, **values))


def ngettext(singular: str, plural: str, count: int, **values: object) -> str:
    """The form of the message for `count` in the reader's language; %(num)d is `count`."""
    return str(babel_ngettext(singular, plural, count, **values))
