"""The WSGI application for production servers: settings from IDP_CONFIG (or the defaults)."""

from idp.app import create_app
from idp.collector import settle_after_start
from idp.config import load_settings
from idp.malloc import limit_malloc_arenas
from idp.observability import configure_logging

limit_malloc_arenas()
configure_logging()
app = create_app(load_settings())
settle_after_start()
