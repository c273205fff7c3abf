"""[branding] and mail: the operator's name, logo, colours and support link on every page without a
template edit, refused when unsafe or unreadable; mail naming the service, the app, when and from where,
in plain text and HTML, reworded from the operator's own template folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.account import Account, Outbox, body_of, sign_in, text
from support.app import add_client, make_app

from idp.config import ConfigError, settings_from_mapping

BRANDING = {
    "product_name": "Example Bank sign-in",
    "logo_url": "https://cdn.example.com/logo.svg",
    "accent_colour": "#7A1F5C",
    "background_colour": "#fafafa",
    "support_url": "mailto:help@example.com",
}


@pytest.mark.parametrize(
    ("branding", "expected"),
    [
        pytest.param(
            {"accent_colour": "purple"}, "must be a colour like #0b5cad", id="fails because not hex"
        ),
        pytest.param(
            {"accent_colour": "#ffcc00"}, "contrast of 4.5:1", id="fails because white text is unreadable"
        ),
        pytest.param({"background_colour": "#fff"}, "must be a colour", id="fails because three digits"),
        pytest.param(
            {"background_colour": "#3a3f44"},
            "the text on it must reach a contrast of 4.5:1",
            id="fails because the product name is unreadable on a dark background",
        ),
        pytest.param(
            {"background_colour": "#8fb3d9"},
            "the accent colour on it (links, focus rings) must reach a contrast of 4.5:1",
            id="fails because links and focus rings vanish into the background",
        ),
        pytest.param({"logo_url": "http://cdn.example.com/a.png"}, "https URL", id="fails because not https"),
        pytest.param(
            {"logo_url": "//cdn.example.com/a.png"}, "https URL", id="fails because scheme-relative"
        ),
        pytest.param({"support_url": "javascript:alert(1)"}, "https or mailto", id="fails because script"),
        pytest.param({"product_name": ""}, "product_name", id="fails because no name"),
    ],
)
def test_unsafe_or_unreadable_branding_is_refused(branding: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"branding": branding})
    assert expected in str(caught.value) and "branding" in str(caught.value)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path, branding=BRANDING)


def test_every_page_carries_the_name_logo_colours_and_support_link(app: Flask, account: Account) -> None:
    for path in ("/", "/account", "/account/sessions", "/no-such-page"):
        page = account.browser.client.get(path)
        body = text(page)
        assert "<title>" in body and "· Example Bank sign-in</title>" in body, path
        assert '<img src="https://cdn.example.com/logo.svg"' in body
        assert '<a href="mailto:help@example.com">Get help signing in</a>' in body
        assert "img-src 'self' data: https://cdn.example.com;" in page.headers["Content-Security-Policy"]
    css = account.browser.client.get("/branding.css")
    assert css.mimetype == "text/css"
    assert css.get_data(as_text=True) == ":root { --accent: #7a1f5c; --bg: #fafafa; }\n"


def test_mail_names_the_service_the_app_when_and_from_where(app: Flask, account: Account) -> None:
    outbox = Outbox.of(app)
    account.browser.client.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    )
    account.post("/account/email/new", address="alice@example.net")
    (message,) = outbox.new_messages()

    plain = body_of(message)
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    for body in (plain, str(html_part.get_content())):
        assert "Your account" in body and "at Example Bank sign-in" in body
        assert "UTC, from 127.0.0.1 (Firefox on Ubuntu)" in body


def test_the_operators_templates_reword_the_mail(tmp_path: Path) -> None:
    own = tmp_path / "own-templates" / "email"
    own.mkdir(parents=True)
    (own / "code.txt").write_text("Ahoy {{ username }}! Your code is {{ code }} for {{ app }}.\n")
    (own / "code.html").write_text("<p>Ahoy! Your code is {{ code }}</p>\n")
    app = make_app(tmp_path, branding={"templates": str(tmp_path / "own-templates")})
    account = sign_in(app, add_client(app)[0])
    outbox = Outbox.of(app)

    account.post("/account/email/new", address="alice@example.net")
    (message,) = outbox.new_messages()

    assert body_of(message).startswith("Ahoy alice! Your code is ")
    assert body_of(message).rstrip().endswith("for Your account.")
    assert "<h1>Your account</h1>" in text(account.get("/account")), "the other templates are the provider's"
