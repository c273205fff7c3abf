"""The language of every page and mail, and the switcher that changes it.

The language is, in this order: the sign-in's own (the client's `ui_locales`, OIDC Core 3.1.2.1, kept
for the pages of that sign-in; a choice on the switcher there replaces it), the reader's choice on the
switcher (a cookie), the browser's Accept-Language, English. The switcher is a plain link on every
page: it sets the cookie and goes back to the page it was on, never to another site.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlsplit

from flask import Blueprint, Flask, abort, has_request_context, redirect, request, url_for
from flask_babel import Babel, get_locale
from jinja2.ext import _make_new_gettext, _make_new_ngettext
from werkzeug.wrappers import Response as BaseResponse

from idp.languages import DEFAULT, LANGUAGES, Language, first_supported, language_of
from idp.package_data import PACKAGE
from idp.per_request import once_per_request
from idp.views import sign_in_request as sign_ins
from idp.web import services
from idp.words import _, translations

COOKIE = "idp_language"
COOKIE_LIFETIME = 400 * 24 * 3600  # the longest a browser keeps a cookie (RFC 6265bis 5.5)
MAX_PATH = 2048

blueprint = Blueprint("language", __name__)


def chosen_language() -> Language:
    """This request's language: the sign-in's, the switcher's, the browser's, else the default (also
    for mail sent by a command)."""
    if not has_request_context():
        return DEFAULT
    return (
        first_supported(filter(None, [sign_ins.language_of_this_sign_in(), request.cookies.get(COOKIE)]))
        or first_supported(tag for tag, quality in request.accept_languages if quality > 0)
        or DEFAULT
    )


@once_per_request
def page_language() -> Language:
    """The language this request speaks (as gettext chose it), for <html lang> and the switcher."""
    catalogue = str(get_locale() or DEFAULT.catalogue)
    return next((language for language in LANGUAGES if language.catalogue == catalogue), DEFAULT)


def localized(text: str) -> str:
    """A text from the configuration as the reader's language says it: the operator's own wording for
    that language ([translations]), else the catalogue's (for the defaults the provider ships), else
    as written."""
    own = services().settings.translations.get(page_language().tag, {})
    return own.get(text) or _(text)


@blueprint.route("/language/<tag>")
def switch(tag: str) -> BaseResponse:
    """Remember the reader's language and go back to `next` (a path on this site), in it."""
    language = language_of(tag)
    if language is None:
        abort(404)
    back = same_site_path(request.args.get("next", "")) or url_for("home.index")
    sign_ins.change_language(back, language.tag)
    response = redirect(back)
    response.set_cookie(
        COOKIE,
        language.tag,
        max_age=COOKIE_LIFETIME,
        secure=services().settings.secure_cookies,
        httponly=True,
        samesite="Lax",
        path="/",
    )
    return response


def same_site_path(target: str) -> str | None:
    """`target` when a browser reads it as a path on this site ("/account?x=1"); None for anything it
    could take elsewhere: "//evil", "/\\evil", "https://evil", or a control character in between."""
    if not target.startswith("/") or len(target) > MAX_PATH:
        return None
    if "\\" in target or any(ord(character) <= 0x20 or ord(character) == 0x7F for character in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and not target.startswith("//") else None


def switch_to(language: Language) -> str:
    """The switcher's link to `language`, back to this page's path. Never its query, which may be
    anyone's (an authorization request's redirect_uri); the path is encoded whole, so that the link
    looks like none of the page's own links."""
    return f"{url_for('language.switch', tag=language.tag)}?next={quote(request.path, safe='')}"


def template_gettext() -> dict[str, Callable[..., str]]:
    """The templates' gettext, `_` and ngettext (`{% trans %}`), bound to the request's catalogue
    (idp.words.translations): the ones Flask-Babel installs look it up again at every call (some
    twenty a page, dozens of context lookups each), and Jinja's `_` looks `gettext` up again. Jinja's
    own new-style wrappers, so escaping and `%(name)s` filling stay Jinja's; a macro imported without
    context keeps the installed ones."""
    catalogue = translations()
    gettext = _make_new_gettext(catalogue.ugettext)
    return {"gettext": gettext, "_": gettext, "ngettext": _make_new_ngettext(catalogue.ungettext)}


def install(app: Flask) -> None:
    """gettext for the chosen language in views and templates ({% trans %} trimmed, as extracted),
    the switcher, and what every page needs to say its language and offer the others."""
    Babel(
        app,
        locale_selector=lambda: chosen_language().catalogue,
        default_locale=DEFAULT.catalogue,
        default_translation_directories=str(PACKAGE / "translations"),
    )
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_template_filter(localized, "localized")
    app.register_blueprint(blueprint)
    app.context_processor(
        lambda: {
            "page_language": page_language(),
            "languages": LANGUAGES,
            "switch_to": switch_to,
            **template_gettext(),
        }
    )
