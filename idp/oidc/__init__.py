"""OpenID Connect: authlib wiring, grants, claims and signing keys."""
