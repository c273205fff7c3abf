"""What hostile input is made of, for the property tests of the provider and of idp.resource.

JSON values of every shape, base64url, JWT-shaped strings (no valid signature), and the fuzzing budget.
"""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
JWT_HEADERS = (
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256"]) | JSON_VALUES},
        optional={
            "kid": JSON_VALUES,
            "typ": st.sampled_from(["JWT", "at+jwt"]) | JSON_VALUES,
            "crit": JSON_VALUES,
            "b64": JSON_VALUES,
        },
    )
    | JSON_VALUES
)
JWT_LIKE = st.builds(
    lambda header, claims, signature: (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{signature}"
    ),
    JWT_HEADERS,
    JSON_VALUES,
    st.sampled_from(["", "AAAA", "!!"]) | st.binary(max_size=80).map(b64url),
)
