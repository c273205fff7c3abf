"""Outgoing mail from Jinja2 templates: SMTP (standard library) or, without a server, an outbox folder."""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from flask import render_template

from idp.config import SmtpSettings

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The message was not handed over; the user must not be told it was sent."""


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    def send(self, message: EmailMessage) -> None:
        settings = self._settings
        context = ssl.create_default_context()
        try:
            if settings.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout, context=context
                )
            else:
                server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            with server:
                if settings.security == "starttls":
                    server.starttls(context=context)
                if settings.username:
                    server.login(settings.username, settings.password)
                server.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("mail to %s not delivered: %s", _domain(message), type(error).__name__)
            raise DeliveryFailed(str(error)) from None


class OutboxMailer:
    """Writes each message as an .eml file: for development and offline demos."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(self, message: EmailMessage) -> None:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            path = self._directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
            path.write_bytes(bytes(message))
        except OSError as error:
            raise DeliveryFailed(str(error)) from None
        log.warning("mail to %s written to %s", _domain(message), path)


def open_mailer(settings: SmtpSettings, outbox: Path) -> Mailer:
    return SmtpMailer(settings) if settings.host else OutboxMailer(outbox)


def compose(*, sender: str, to: str, subject: str, template: str, **context: Any) -> EmailMessage:
    """A plain-text and HTML message from templates/email/<template>.txt and .html."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(render_template(f"email/{template}.txt", **context))
    message.add_alternative(render_template(f"email/{template}.html", **context), subtype="html")
    return message


def _domain(message: EmailMessage) -> str:
    """Logs name the recipient's domain only."""
    return "@" + str(message["To"]).rpartition("@")[2]
