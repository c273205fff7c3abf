"""The operator's branding ([branding]): the name, logo, colours and support link every page and mail
shows, its stylesheet, and the operator's template folder searched before the provider's own."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader

from idp.config import BrandingSettings
from idp.web import services

blueprint = Blueprint("branding", __name__)


@blueprint.route("/branding.css")
def stylesheet() -> Response:
    """The configured colours as CSS variables (a file: the policy allows no inline style)."""
    branding = services().settings.branding
    body = f":root {{ --accent: {branding.accent_colour}; --bg: {branding.background_colour}; }}\n"
    return Response(body, mimetype="text/css", headers={"Cache-Control": "public, max-age=300"})


def install(app: Flask, branding: BrandingSettings) -> None:
    """`branding` in every template; the operator's templates first, when configured."""
    app.context_processor(lambda: {"branding": branding})
    if branding.templates:
        own: BaseLoader | None = app.jinja_loader
        assert own is not None
        app.jinja_loader = ChoiceLoader([FileSystemLoader(Path(branding.templates)), own])


def image_sources(branding: BrandingSettings) -> str:
    """The Content-Security-Policy img-src: this site, data: (QR codes), and the logo's origin."""
    parts = urlsplit(branding.logo_url)
    logo = f" {parts.scheme}://{parts.netloc}" if parts.scheme == "https" else ""
    return f"'self' data:{logo}"
