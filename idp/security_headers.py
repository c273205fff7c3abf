"""The headers every response of the provider carries, whichever path answers it."""

from __future__ import annotations

HSTS = "max-age=31536000; includeSubDomains"
OWN_IMAGES = "'self' data:"  # this site and data: URLs (QR codes); a configured logo adds its origin


def content_security_policy(*, images: str = OWN_IMAGES) -> str:
    """Every page's policy; a page that frames others (front-channel logout) adds its own frame-src."""
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


def security_headers(*, mimetype: str | None, hsts: bool, images: str = OWN_IMAGES) -> list[tuple[str, str]]:
    """What a response gets unless it set the header itself: no framing, no sniffing, no referrer,
    HSTS behind TLS, and no caching of pages."""
    headers = [
        ("Content-Security-Policy", content_security_policy(images=images)),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
    ]
    if hsts:
        headers.append(("Strict-Transport-Security", HSTS))
    if mimetype == "text/html":
        headers.append(("Cache-Control", "no-store"))
    return headers
