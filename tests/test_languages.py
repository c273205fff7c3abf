"""Languages: every text people read is in the catalogue and translated (a template string outside
translation fails here), the language is chosen as docs/configuration.md says (the sign-in's
ui_locales, the switcher's cookie, Accept-Language, English), the switcher goes nowhere but this site,
and mail speaks the language of the request that sends it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask, render_template
from flask_babel import gettext as babel_gettext
from flask_babel import ngettext as babel_ngettext
from jinja2 import Environment
from support.account import Account, Outbox, body_of, sign_in, text
from support.app import Browser, add_client, add_user, make_app

from idp.config import ConfigError, settings_from_mapping
from idp.languages import ENGLISH, SIMPLIFIED_CHINESE, Language, language_of
from idp.views.account_changes import in_reader_language
from idp.views.plain_words import listed, moment
from idp.words import _, ngettext

CHECKOUT = Path(__file__).resolve().parent.parent
CATALOGUE = CHECKOUT / "idp" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
TEMPLATES = CHECKOUT / "templates"
CJK = re.compile(r"[\u4e00-\u9fff]")
CHINESE = 'lang="zh-Hans-CN"'
ENGLISH_PAGE = '<html lang="en">'


# -- the catalogue ---------------------------------------------------------------------------------


def extracted_messages() -> dict[str, str]:
    """Every translatable message of idp/ and templates/, as `make catalogue` extracts it (babel.cfg);
    a template Babel cannot read fails here rather than being skipped."""
    method_map = [("idp/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
    options = {
        pattern: {"trimmed": "true", "silent": "false"}
        for pattern, method in method_map
        if method == "jinja2"
    }
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(CHECKOUT), method_map, options, keywords=DEFAULT_KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalogue() -> Catalog:
    with CATALOGUE.open("rb") as po:
        return read_po(po)


def test_every_message_of_the_code_and_templates_has_a_chinese_translation(catalogue: Catalog) -> None:
    untranslated = {
        msgid: where
        for msgid, where in extracted_messages().items()
        if (entry := catalogue.get(msgid)) is None
        or entry.fuzzy
        or not all(entry.string if isinstance(entry.string, tuple) else [entry.string])
    }
    assert untranslated == {}, "add them to the catalogue: `make catalogue`, then translate each msgstr"


def test_the_catalogue_holds_only_messages_the_code_still_says(catalogue: Catalog) -> None:
    in_use = set(extracted_messages())
    stale = {entry.id[0] if isinstance(entry.id, tuple) else entry.id for entry in catalogue if entry.id}
    assert stale - in_use == set(), "`make catalogue` drops them"


def test_each_translation_keeps_the_placeholders_of_its_message(catalogue: Catalog) -> None:
    problems = {
        str(entry.id): [str(error) for error in errors] for entry, errors in catalogue.check() if errors
    }
    assert problems == {}


def test_the_compiled_catalogue_is_the_current_one() -> None:
    compiled = CATALOGUE.with_suffix(".mo")
    assert compiled.exists() and compiled.stat().st_mtime >= CATALOGUE.stat().st_mtime, (
        "messages.mo is missing or older than messages.po: `make test` (or pip install -e .) compiles it"
    )


# -- no text in a template outside translation -----------------------------------------------------

# Attributes a person reads (or hears); `value` only where a text field shows it.
READ_ATTRIBUTES = frozenset({"aria-label", "aria-description", "title", "placeholder", "alt", "value"})
SHOWN_VALUES = frozenset({"text", "submit", "button"})
# Blocks whose content is no text: the class of <main>.
NOT_TEXT_BLOCKS = frozenset({"main_class"})
# Shown as they are in every language: the form of a device code, examples of audit event names.
ALLOWED = frozenset({"XXXX-XXXX", "sign_in, user_disabled, admin_api…"})
LETTER = re.compile(r"[^\W\d_]")
# What a macro writes into a tag (aria-current="page", autofocus): attributes, not text.
ATTRIBUTES = re.compile(r'(\s*(?:[a-z-]+="[^"]*"|autofocus|required|hidden|disabled|checked|open))+\s*')
EXPRESSION = "\x00"  # an {{ expression }}: its text comes from the code, translated there


def skeleton(source: str) -> str:
    """The template's own text: {{ expressions }} as EXPRESSION, {% tags %} dropped, and nothing of a
    {% trans %} block (translated) or of a block that is no text."""
    parts: list[str] = []
    hidden: list[str] = []  # the open blocks and trans tags, innermost last
    tag: list[str] = []
    inside_tag = False
    for _line, kind, value in Environment(extensions=["jinja2.ext.i18n"], autoescape=True).lex(source):
        if kind == "block_begin":
            inside_tag, tag = True, []
        elif inside_tag and kind == "name" and len(tag) < 2:
            tag.append(value)
        elif inside_tag and kind == "block_end":
            inside_tag = False
            if tag[0] in ("block", "trans"):
                hidden.append("trans" if tag[0] == "trans" else tag[1])
            elif tag[0] in ("endblock", "endtrans"):
                hidden.pop()
        elif not inside_tag and not any(name == "trans" or name in NOT_TEXT_BLOCKS for name in hidden):
            if kind == "data":
                parts.append(value)
            elif kind == "variable_begin":
                parts.append(EXPRESSION)
    return "".join(parts)


class VisibleText(HTMLParser):
    """The text a page shows (outside script and style) and the attributes people read."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_code += tag in ("script", "style")
        named = dict(attrs)
        for name, value in attrs:
            if name == "value" and not (tag == "input" and named.get("type", "text") in SHOWN_VALUES):
                continue
            if name in READ_ATTRIBUTES and value:
                self._keep(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_code -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._in_code:
            self._keep(data)

    def _keep(self, text: str) -> None:
        if LETTER.search(text) and text.strip() not in ALLOWED and not ATTRIBUTES.fullmatch(text):
            self.found.append(text.strip())


def untranslated_text(source: str) -> list[str]:
    reader = VisibleText()
    reader.feed(skeleton(source))
    reader.close()
    return reader.found


@pytest.mark.parametrize(
    "template",
    sorted(path.relative_to(TEMPLATES).as_posix() for path in TEMPLATES.rglob("*") if path.is_file()),
)
def test_no_template_shows_text_outside_translation(template: str) -> None:
    assert untranslated_text((TEMPLATES / template).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param("<p>Hello {{ name }}</p>", ["Hello \x00"], id="fails because text is bare"),
        pytest.param(
            '<a aria-label="Remove {{ x }}">{{ _("X") }}</a>',
            ["Remove \x00"],
            id="fails because a label is bare",
        ),
        pytest.param(
            '<input type="text" value="My key">', ["My key"], id="fails because a field's default is bare"
        ),
        pytest.param("{% if a %}Yes{% endif %}", ["Yes"], id="fails because text inside a condition is bare"),
        pytest.param(
            "{% block title %}Sign in{% endblock %}", ["Sign in"], id="fails because a title is bare"
        ),
        pytest.param("<p>{% trans %}Hello {{ name }}{% endtrans %}</p>", [], id="a trans block"),
        pytest.param('<p>{{ _("Hello") }} · {{ name }}</p>', [], id="gettext and separators"),
        pytest.param(
            '<button name="d" value="allow">{{ _("Allow") }}</button>', [], id="a button's value is sent"
        ),
        pytest.param('<script>const a = "text";</script>', [], id="script"),
        pytest.param("{% block main_class %}wide{% endblock %}", [], id="a class"),
        pytest.param('{% macro m() %} aria-current="page" autofocus{% endmacro %}', [], id="attributes"),
        pytest.param(
            "{% macro m() %}<p>Saved</p>{% endmacro %}", ["Saved"], id="fails because a macro's text is bare"
        ),
    ],
)
def test_the_template_check_finds_bare_text(source: str, found: list[str]) -> None:
    assert untranslated_text(source) == found


# -- which language --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh", SIMPLIFIED_CHINESE),
        ("zh-CN", SIMPLIFIED_CHINESE),
        ("zh-Hans", SIMPLIFIED_CHINESE),
        ("zh-Hans-CN", SIMPLIFIED_CHINESE),
        ("zh_CN", SIMPLIFIED_CHINESE),
        ("ZH-cn", SIMPLIFIED_CHINESE),
        ("zh-SG", SIMPLIFIED_CHINESE),
        ("en", ENGLISH),
        ("en-GB", ENGLISH),
        pytest.param("zh-TW", None, id="fails because Taiwan writes Traditional Chinese"),
        pytest.param("zh-Hant-CN", None, id="fails because the script is Traditional"),
        pytest.param("zh-HK", None, id="fails because Hong Kong writes Traditional Chinese"),
        pytest.param("fr-FR", None, id="fails because French is not spoken"),
        pytest.param("", None, id="fails because it is empty"),
        pytest.param("*", None, id="fails because a wildcard names no language"),
        pytest.param("zh-" + "a" * 40, None, id="fails because it is too long"),
        pytest.param("zh;q=1", None, id="fails because it is not a tag"),
    ],
)
def test_a_tag_names_one_of_the_languages(tag: str, language: Language | None) -> None:
    assert language_of(tag) == language


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def client_id(app: Flask) -> str:
    return add_client(app, name="Shop")[0]


def page_language(page_text: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', page_text)
    assert found, "the page has no lang attribute"
    return found.group(1)


def test_ui_locales_sets_the_language_of_the_sign_in_and_the_pages_that_follow(
    app: Flask, client_id: str
) -> None:
    add_user(app, "alice", "a long enough password")
    browser = Browser(app.test_client(), client_id)
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"

    password_page = browser.authorize(ui_locales="fr-CA zh-CN en")
    wrong = browser.submit(password_page, username="alice", password="not it")
    enrolment = browser.submit(wrong, username="alice", password="a long enough password")

    for page in (password_page, wrong, enrolment):
        assert page_language(text(page)) == "zh-Hans-CN"
    assert "以继续前往 <strong>Shop</strong>" in text(password_page)
    assert "用户名或密码不正确。" in text(wrong)
    assert "设置两步验证" in text(enrolment)
    assert page_language(text(browser.client.get("/"))) == "en", "outside the sign-in: the browser's"


def test_without_ui_locales_the_accept_language_header_chooses(app: Flask, client_id: str) -> None:
    client = app.test_client()

    chinese = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    traditional_first = client.get("/", headers={"Accept-Language": "zh-TW,en;q=0.9,zh-CN;q=0.8"})
    unsupported = client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9,de;q=0.5"})

    assert page_language(text(chinese)) == "zh-Hans-CN" and "身份提供方" in text(chinese)
    assert page_language(text(traditional_first)) == "en"
    assert page_language(text(unsupported)) == "en" and "Identity provider" in text(unsupported)


def test_the_switchers_cookie_beats_accept_language(app: Flask) -> None:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9"

    switched = client.get("/language/en", query_string={"next": "/account/missing?x=1"})

    assert switched.status_code == 302 and switched.location == "/account/missing?x=1"
    assert page_language(text(client.get("/"))) == "en"
    client.get("/language/zh-CN")
    assert page_language(text(client.get("/", headers={"Accept-Language": "en"}))) == "zh-Hans-CN"


def test_the_switcher_on_a_sign_in_page_changes_that_sign_ins_language(app: Flask, client_id: str) -> None:
    browser = Browser(app.test_client(), client_id)
    password_page = browser.authorize(ui_locales="zh-CN")
    here = password_page.request.path
    (english,) = re.findall(r'href="(/language/en\?next=[^"]+)"', text(password_page))

    back = browser.follow(browser.client.get(english.replace("&amp;", "&")))

    assert back.request.path == here
    assert page_language(text(back)) == "en" and "to continue to <strong>Shop</strong>" in text(back)


def test_another_browser_cannot_change_the_language_of_a_sign_in(app: Flask, client_id: str) -> None:
    victim = Browser(app.test_client(), client_id)
    password_page = victim.authorize(ui_locales="zh-CN")
    attacker = app.test_client()

    attacker.get("/language/en", query_string={"next": password_page.request.path})

    again = victim.client.get(password_page.request.path)
    assert again.status_code == 200 and page_language(text(again)) == "zh-Hans-CN"


def test_the_switcher_never_brings_back_a_finished_sign_in(app: Flask, client_id: str) -> None:
    add_user(app, "alice", "a long enough password")
    browser = Browser(app.test_client(), client_id)
    done, _secret = browser.sign_in_with_enrolment("alice", "a long enough password", ui_locales="zh")
    sign_in_path = urlsplit(done.request.path).path.removesuffix("/recovery-codes")

    browser.client.get("/language/en", query_string={"next": sign_in_path})

    again = browser.client.get(sign_in_path.replace("/signin/", "/authorize/resume/"))
    assert again.status_code == 400 and "Sign-in expired" in text(again)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("https://evil.example/", id="fails because it is another site"),
        pytest.param("//evil.example/path", id="fails because it is a scheme-relative URL"),
        pytest.param("/\\evil.example", id="fails because browsers read a backslash as a slash"),
        pytest.param("/\t/evil.example", id="fails because browsers drop a tab"),
        pytest.param("javascript:alert(1)", id="fails because it is a script"),
        pytest.param("evil.example", id="fails because it is no path"),
        pytest.param("/" + "a" * 3000, id="fails because it is too long"),
    ],
)
def test_the_switcher_goes_back_only_to_this_site(app: Flask, target: str) -> None:
    answer = app.test_client().get("/language/zh-CN", query_string={"next": target})

    assert answer.status_code == 302 and answer.location == "/"


def test_the_switchers_cookie_is_lax_long_lived_and_secure_over_https(tmp_path: Path) -> None:
    plain = make_app(tmp_path / "http").test_client().get("/language/zh-Hans")
    behind_tls = make_app(tmp_path / "https", issuer="https://idp.example").test_client().get("/language/zh")

    cookie = plain.headers["Set-Cookie"]
    assert cookie.startswith("idp_language=zh-Hans-CN;") and "SameSite=Lax" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie
    assert "Secure" in behind_tls.headers["Set-Cookie"]


def test_the_switcher_refuses_a_language_it_does_not_speak(app: Flask) -> None:
    answer = app.test_client().get("/language/fr", headers={"Accept-Language": "zh-CN"})

    assert answer.status_code == 404 and "Set-Cookie" not in answer.headers
    assert "找不到页面" in text(answer)


def test_every_page_offers_the_other_language_and_marks_its_own(app: Flask) -> None:
    page = text(app.test_client().get("/no/such/page", headers={"Accept-Language": "zh-CN"}))

    assert page_language(page) == "zh-Hans-CN"
    assert '<nav class="languages" aria-label="语言">' in page
    assert 'href="/language/en?next=%2Fno%2Fsuch%2Fpage" lang="en" hreflang="en">English</a>' in page
    assert 'lang="zh-Hans-CN" hreflang="zh-Hans-CN" aria-current="true">简体中文</a>' in page


def test_discovery_lists_the_languages(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration").get_json()

    assert document["ui_locales_supported"] == ["en", "zh-Hans-CN"]


# -- what is said ------------------------------------------------------------------------------------


def test_error_pages_speak_the_readers_language(app: Flask) -> None:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"

    missing = client.get("/nowhere")
    expired = client.get("/signin/no-such-sign-in")
    forged = client.post("/logout/confirm", data={"csrf_token": "forged"})

    assert missing.status_code == 404 and "找不到页面" in text(missing)
    assert expired.status_code == 400 and "登录已过期" in text(expired)
    assert forged.status_code == 400 and "此表单已过期" in text(forged)


@pytest.fixture
def chinese_account(app: Flask, client_id: str) -> Iterator[Account]:
    account = sign_in(app, client_id)
    account.browser.client.get("/language/zh-CN")
    yield account


def test_mail_is_in_the_language_of_the_request_that_sends_it(app: Flask, chinese_account: Account) -> None:
    outbox = Outbox.of(app)

    chinese_account.post("/account/email/new", address="alice@example.net")
    (code,) = outbox.new_messages()
    chinese_account.post("/account/email/verify", code=re.findall(r"\d{6}", body_of(code))[0])
    (change,) = outbox.new_messages()

    assert str(code["Subject"]).startswith("你的验证码：")
    assert str(change["Subject"]) == "你的账号有变更"
    for message in (code, change):
        parts = [part.get_content() for part in message.iter_parts()]
        assert len(parts) == 2, "a plain-text and an HTML part"
        for body in parts:
            assert "alice，你好：" in body and "Hello" not in body and "When:" not in body
    assert "已添加电子邮件地址 alice@example.net" in body_of(change)


def test_a_reset_link_mail_follows_the_sign_ins_ui_locales(app: Flask, chinese_account: Account) -> None:
    outbox = Outbox.of(app)
    chinese_account.post("/account/email/new", address="alice@example.net")
    (code,) = outbox.new_messages()
    chinese_account.post("/account/email/verify", code=re.findall(r"\d{6}", body_of(code))[0])
    outbox.new_messages()
    browser = Browser(app.test_client(), chinese_account.browser.client_id)
    password_page = browser.authorize(ui_locales="zh")
    forgot = browser.client.get(password_page.request.path + "/forgot")

    sent = browser.submit(forgot, who="alice")
    (link,) = outbox.new_messages()

    assert "如果存在匹配的账号" in text(sent)
    assert str(link["Subject"]) == "重置密码" and "有人在登录 Shop 时" in body_of(link)


def test_mail_sent_outside_a_request_is_in_english(app: Flask) -> None:
    """A command has no reader's request to follow: the default language."""
    context = {"username": "robin", "code": "123456", "app": "Shop", "reason": "confirm it is you"}
    context |= {"when": "now", "ip": "192.0.2.1", "device": "Firefox on Ubuntu", "minutes": 10}

    with app.app_context():
        body = render_template("email/code.txt", **context)

    assert body.startswith("Hello robin,") and not CJK.search(body)


def test_the_history_says_changes_recorded_in_english_in_the_readers_language(app: Flask) -> None:
    recorded = "password changed; 2 other session(s) ended and 1 app grant(s) revoked"

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        chinese = in_reader_language(recorded)
    with app.test_request_context():
        english = in_reader_language(recorded)

    assert chinese == "密码已更改；已结束 2 个其他会话，并撤销 1 项应用授权"
    assert english == recorded


MINUTES = (
    "Too many failed attempts. Try again in %(num)d minute.",
    "Too many failed attempts. Try again in %(num)d minutes.",
)


@pytest.mark.parametrize("accept_language", ["zh-CN", "en"])
def test_the_words_say_what_flask_babel_says(app: Flask, accept_language: str) -> None:
    """idp.words looks the request's catalogue up once; every text is still Flask-Babel's, word for word."""
    with app.test_request_context(headers={"Accept-Language": accept_language}):
        assert _("Sign in") == babel_gettext("Sign in")
        assert _("Use at most %(count)s characters.", count=9) == babel_gettext(
            "Use at most %(count)s characters.", count=9
        )
        assert _("not in the catalogue 100%") == babel_gettext("not in the catalogue 100%")
        for count in (1, 2):
            assert ngettext(*MINUTES, count) == babel_ngettext(*MINUTES, count)
        said = [_("Sign in"), ngettext(*MINUTES, 2)]
    assert any(CJK.search(text) for text in said) == (accept_language == "zh-CN")


def test_times_and_lists_follow_the_language(app: Flask) -> None:
    at = datetime(2025, 5, 1, 14, 30, tzinfo=UTC).timestamp()

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert moment(at) == "2025年5月1日 14:30 UTC"
        assert listed(["密码", "身份验证器应用", "恢复码"]) == "密码、身份验证器应用和恢复码"
    with app.test_request_context():
        assert moment(at) == "2025-05-01 14:30 UTC"


def test_the_operators_own_words_show_in_each_language_as_configured(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        branding={"product_name": "Example Bank sign-in"},
        translations={"zh-CN": {"Example Bank sign-in": "示例银行登录"}},
    )
    client = app.test_client()

    chinese = text(client.get("/", headers={"Accept-Language": "zh"}))
    english = text(client.get("/", headers={"Accept-Language": "en"}))

    assert "<span>示例银行登录</span>" in chinese
    assert "<span>Example Bank sign-in</span>" in english


def test_the_default_product_name_is_translated(app: Flask) -> None:
    page = text(app.test_client().get("/", headers={"Accept-Language": "zh"}))

    assert "<span>登录服务</span>" in page


def test_translations_for_a_language_the_pages_do_not_speak_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"translations: .*'fr' is not a language the pages speak"):
        settings_from_mapping({"translations": {"fr": {"Sign in": "Se connecter"}}})
