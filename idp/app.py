"""create_app(settings): open the stores, wire the authorization server, register the blueprints."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc6749 import InsecureTransportError
from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from idp import observability
from idp.admin import api as admin_api
from idp.auth.attestation import load_trust_anchors
from idp.auth.email_codes import EmailCodes
from idp.auth.passwords import Passwords
from idp.auth.policy import AssurancePolicy
from idp.auth.quotas import Quotas
from idp.auth.reset_links import ResetLinks
from idp.auth.sessions import ServerSessionInterface
from idp.auth.throttle import Throttle
from idp.auth.totp import Totp
from idp.auth.webauthn import Ceremonies, RelyingParty
from idp.config import Settings
from idp.csrf_origin import install_origin_check
from idp.lean_paths import LeanPaths
from idp.mail import open_mailer
from idp.oidc.authorization_details import DetailTypes
from idp.oidc.backchannel import BackChannelDelivery, audit_delivery_failure
from idp.oidc.clients import ClientCache
from idp.oidc.context import ProviderContext, provider_context
from idp.oidc.keys import KeyRing
from idp.oidc.server import build_server
from idp.oidc.tokens import TokenService
from idp.package_data import data_folder
from idp.secrets import SecretBox, load_session_secret
from idp.security_headers import security_headers
from idp.store.database import Database
from idp.store.ephemeral import open_ephemeral_store
from idp.store.failures import STORE_FAILURES
from idp.trusted_proxies import TrustedProxies, parse_networks
from idp.views import (
    account,
    account_selection,
    branding,
    consent,
    console,
    device,
    errors,
    home,
    language,
    logout,
    oidc,
    password_reset,
    plain_words,
    session_state,
    sign_in_request,
    signin,
    wellknown,
)
from idp.views.account.guard import login_manager
from idp.views.sign_in_request import TooManySignIns
from idp.web import (
    AUTHORIZATION_SERVER,
    EXTENSION,
    Services,
    audit,
    durable_store,
    install_unit_of_work,
)

CLIENT_CACHE_SECONDS = 10
MAX_REQUEST_BYTES = 64 * 1024
# Libraries that log secrets below WARNING: authlib every token it issues (DEBUG), SQLAlchemy statement
# parameters and result rows, so password hashes and sealed TOTP secrets (INFO, DEBUG).
LIBRARIES_LOGGING_SECRETS = ("authlib", "sqlalchemy")


def open_services(settings: Settings) -> Services:
    keys_dir = Path(settings.keys.directory)
    ephemeral = open_ephemeral_store(settings.redis.url, Path(settings.instance_dir))
    keyring = KeyRing.load(keys_dir)
    policy = AssurancePolicy.from_settings(settings)
    trust = load_trust_anchors(settings.webauthn)
    database = Database(settings.database_url, pool_size=settings.database.pool_size)
    return Services(
        settings=settings,
        policy=policy,
        database=database,
        ephemeral=ephemeral,
        keyring=keyring,
        tokens=TokenService(
            issuer=settings.issuer,
            keyring=keyring,
            algorithm=settings.keys.algorithm,
            ephemeral=ephemeral,
            access_token_lifetime=settings.tokens.access_token_lifetime,
        ),
        passwords=Passwords(settings.passwords),
        totp=Totp(
            ephemeral=ephemeral, issuer_name=settings.totp.issuer_name, drift_steps=settings.totp.drift_steps
        ),
        ceremonies=Ceremonies(
            relying_party=RelyingParty(
                id=settings.rp_id, name=settings.webauthn.rp_name, origin=settings.origin
            ),
            ephemeral=ephemeral,
            challenge_ttl=settings.webauthn.challenge_ttl,
            trust=trust,
            request_attestation=trust.configured and policy.needs_attestation,
        ),
        email_codes=EmailCodes(ephemeral=ephemeral, lifetime=settings.factors.email.code_lifetime),
        throttle=Throttle(ephemeral=ephemeral, settings=settings.throttle),
        mailer=open_mailer(settings.smtp, settings.outbox),
        secret_box=SecretBox(keys_dir),
        quotas=Quotas(
            ephemeral=ephemeral,
            settings=settings.address_limits,
            sign_in_lifetime=settings.tokens.sign_in_lifetime,
        ),
        backchannel=BackChannelDelivery(
            settings.logout, report_failure=partial(audit_delivery_failure, database)
        ),
        authorization_details=DetailTypes(settings.authorization_details),
        reset_links=ResetLinks(ephemeral=ephemeral, lifetime=settings.account.reset_link_lifetime),
    )


def protocol_context(found: Services) -> ProviderContext:
    """The slice of the services that grants and token endpoints use, with this request's unit of work."""
    return provider_context(
        found.settings,
        tokens=found.tokens,
        ephemeral=found.ephemeral,
        keyring=found.keyring,
        clients=ClientCache(
            load=lambda client_id: durable_store().clients.get_detached(client_id), ttl=CLIENT_CACHE_SECONDS
        ),
        durable=durable_store,
        audit=audit,
        policy=found.policy,
        authorization_details=found.authorization_details,
    )


class BoundedJSONProvider(DefaultJSONProvider):
    """A body nested deeper than the parser recurses is malformed JSON (a ValueError), not a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def create_app(settings: Settings) -> Flask:
    found = open_services(settings)
    app = Flask(
        __name__,
        template_folder=str(data_folder("templates")),
        static_folder=str(data_folder("static")),
    )
    app.json = BoundedJSONProvider(app)
    app.config.update(
        SECRET_KEY=load_session_secret(Path(settings.keys.directory)),
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        WTF_CSRF_TIME_LIMIT=settings.tokens.sign_in_lifetime,
        WTF_CSRF_SSL_STRICT=False,  # browsers send no Referer under no-referrer: Origin is checked instead
    )
    app.extensions[EXTENSION] = found
    app.extensions[AUTHORIZATION_SERVER] = build_server(protocol_context(found))
    # flask-login without init_app: its after_request hook serves remember-me cookies, which the
    # provider never sets (the server-side session is the only credential), and it would fail on a
    # request whose session could not be opened (a store outage, answered 503 below).
    app.login_manager = login_manager  # type: ignore[attr-defined]
    app.session_interface = ServerSessionInterface(
        store=found.ephemeral,
        lifetime=settings.sessions.lifetime,
        anonymous_lifetime=settings.tokens.sign_in_lifetime,
        signed_in_key=session_state.AUTH_KEY,
        cookie_name=settings.sessions.cookie_name,
        secure=settings.secure_cookies,
        read_along=sign_in_request.read_along,
    )
    csrf = CSRFProtect(app)
    exempt = (
        oidc.authorize,
        oidc.token,
        oidc.revoke,
        oidc.introspect,
        oidc.userinfo,
        oidc.pushed_authorization_request,
        oidc.device_authorization,
        logout.end_session,
        *admin_api.VIEWS,  # bearer tokens only: no cookie authenticates an admin API call
    )
    for view in exempt:
        csrf.exempt(view)
    install_origin_check(app, expected_origin=settings.origin, exempt=exempt)
    for module in (
        wellknown,
        oidc,
        branding,
        signin,
        password_reset,
        consent,
        account_selection,
        logout,
        home,
        account,
        device,
    ):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(admin_api.blueprint)
    app.register_blueprint(console.blueprint)
    language.install(app)
    app.add_template_filter(plain_words.moment, "datetime")
    app.add_template_filter(_isotime, "isotime")
    app.add_template_filter(plain_words.device, "device")
    observability.install(app, metrics_bearer_token=settings.metrics.bearer_token)
    install_unit_of_work(app)
    _install_failure_pages(app)
    _install_body_limit(app)
    _install_security_headers(
        app, hsts=settings.secure_cookies, images=branding.image_sources(settings.branding)
    )
    branding.install(app, settings.branding)
    for name in LIBRARIES_LOGGING_SECRETS:
        logging.getLogger(name).setLevel(logging.WARNING)
    documents = wellknown.published_documents(
        settings.issuer,
        found.policy,
        found.keyring.jwks_json,
        par=settings.par,
        detail_types=found.authorization_details.names,
    )
    # Flask's documented way to wrap the app in WSGI middleware, which mypy sees as replacing a method.
    app.wsgi_app = wellknown.PublishedDocuments(  # type: ignore[method-assign]
        app.wsgi_app, documents, hsts=settings.secure_cookies
    )
    app.wsgi_app = LeanPaths(  # type: ignore[method-assign]
        app.wsgi_app,
        server=app.extensions[AUTHORIZATION_SERVER],
        throttle=found.throttle,
        database=found.database,
        hsts=settings.secure_cookies,
        max_body=MAX_REQUEST_BYTES,
        dumps=app.json.dumps,
    )
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, trusted_proxies=parse_networks(settings.server.trusted_proxies)
    )
    return app


def _isotime(timestamp: int) -> str:
    """A <time datetime> value (HTML: a valid global date and time string)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _install_failure_pages(app: Flask) -> None:
    """A store that cannot be reached fails the request closed, with a plain page and no partial state;
    every other refusal outside a view gets the provider's page or the endpoint's JSON error."""

    def unavailable(_error: Exception) -> Response:
        return errors.storage_unavailable()

    for kind in STORE_FAILURES:
        app.register_error_handler(kind, unavailable)
    app.register_error_handler(HTTPException, errors.http_error)

    @app.errorhandler(InsecureTransportError)
    def insecure_transport(_error: InsecureTransportError) -> tuple[Response, int]:
        """authlib refuses an OAuth request whose URL is plain http off loopback, as a forged Host
        header makes it: a bad request, not a server error."""
        return jsonify(error="invalid_request", error_description="The request must be sent over https."), 400

    @app.errorhandler(TooManySignIns)
    def too_many_sign_ins(error: TooManySignIns) -> Response:
        return errors.too_many_sign_ins(error.retry_after)

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Response:
        """Failures while opening the session reach Flask before the handlers above."""
        if isinstance(error.original_exception, STORE_FAILURES):
            return unavailable(error.original_exception)
        return errors.http_error(error)


def _install_body_limit(app: Flask) -> None:
    """A body declared larger than the limit is refused up front, also where no view reads it."""

    @app.before_request
    def refuse_large_bodies() -> None:
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            raise RequestEntityTooLarge()


def _install_security_headers(app: Flask, *, hsts: bool, images: str) -> None:
    """Each of `security_headers` a response did not set itself, added in one pass over its headers
    (a `setdefault` each looked through them all again), the lists made once."""
    for_pages = security_headers(mimetype="text/html", hsts=hsts, images=images)
    for_others = security_headers(mimetype=None, hsts=hsts, images=images)

    @app.after_request
    def headers(response: Response) -> Response:
        present = {name.lower() for name, _value in response.headers}
        wanted = for_pages if response.mimetype == "text/html" else for_others
        response.headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
        return response
