"""The web layer: hosted pages and protocol endpoints, over the services in idp.web."""
