"""An independent relying party for end-to-end tests: requests and PyJWT, nothing from authlib.

It drives the hosted pages the way a browser without JavaScript does: follow the provider's own
redirects, scrape each plain form (with its `csrf_token`), post it back, and stop as soon as the
provider sends the user agent anywhere else (to a client).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import jwt
import pyotp
import requests

from support.live import LiveProvider

TIMEOUT = 10
TOTP_STEP = 30
SIGNIN_PAGE = re.compile(r"^/signin/[^/]+$")
FACTOR_PAGE = re.compile(r"^/signin/[^/]+/factor$")
ENROL_PAGE = re.compile(r"^/signin/[^/]+/enrol/totp$")
SECRET = re.compile(r'<code class="secret" id="secret">([A-Z2-7=]+)</code>')


# -- what the relying party holds -----------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A relying party as `idp clients create --json` registered it."""

    client_id: str
    redirect_uri: str
    secret: str | None = None

    def authenticated(self, form: dict[str, str]) -> dict[str, Any]:
        """requests arguments for a form this client sends: HTTP Basic, or client_id alone when public."""
        if self.secret is None:
            return {"data": {**form, "client_id": self.client_id}}
        return {"data": form, "auth": (self.client_id, self.secret)}

    def with_secret(self, secret: str) -> Client:
        return Client(self.client_id, self.redirect_uri, secret)


@dataclass(frozen=True)
class Pkce:
    """RFC 7636 with S256."""

    verifier: str

    @classmethod
    def new(cls) -> Pkce:
        return cls(secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Authenticator:
    """The user's authenticator app: one code per 30 s step, never the same step twice."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.totp = pyotp.TOTP(secret)
        self.used: set[int] = set()

    def next_code(self) -> str:
        """A code of the earliest step within the provider's one step of drift that is later than every
        step it saw (it refuses a spent step and any before it); waits when none is left."""
        while True:
            now = time.time()
            current = int(now) // TOTP_STEP
            candidates = [current, current + 1]
            if now % TOTP_STEP < TOTP_STEP - 5:  # the previous step stays valid for the rest of this one
                candidates.insert(0, current - 1)
            for step in candidates:
                if step > max(self.used, default=step - 1):
                    self.used.add(step)
                    return str(self.totp.generate_otp(step))
            time.sleep(TOTP_STEP - now % TOTP_STEP + 0.1)

    def is_timely(self, code: str) -> bool:
        """The code would pass a verifier that allows one step of drift (it was not refused as stale)."""
        return bool(self.totp.verify(code, valid_window=1))


@dataclass
class Account:
    """A user created through the CLI; the authenticator exists once they enrolled."""

    username: str
    password: str
    authenticator: Authenticator | None = None


# -- the provider, as a relying party sees it ---------------------------------------------------------


class OpenIdProvider:
    """Discovery, the JWKS and the back-channel endpoints; every endpoint comes from discovery."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.metadata: dict[str, Any] = requests.get(
            f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT
        ).json()
        assert self.metadata["issuer"] == issuer
        self.jwks = jwt.PyJWKSet.from_dict(requests.get(self.metadata["jwks_uri"], timeout=TIMEOUT).json())

    def endpoint(self, name: str) -> str:
        return str(self.metadata[f"{name}_endpoint"])

    def signing_key(self, kid: str) -> jwt.PyJWK:
        return next(key for key in self.jwks.keys if key.key_id == kid)

    def token(self, client: Client, **form: str) -> requests.Response:
        return requests.post(self.endpoint("token"), timeout=TIMEOUT, **client.authenticated(form))

    def exchange(self, attempt: Attempt, code: str) -> requests.Response:
        """The token request for an authorization code (RFC 6749 4.1.3 with the PKCE verifier)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": attempt.client.redirect_uri}
        if attempt.pkce is not None:
            form["code_verifier"] = attempt.pkce.verifier
        return self.token(attempt.client, **form)

    def refresh(self, client: Client, refresh_token: str) -> requests.Response:
        return self.token(client, grant_type="refresh_token", refresh_token=refresh_token)

    def introspect(self, token: str, *, resource_server: Client) -> dict[str, Any]:
        response = requests.post(
            self.endpoint("introspection"), timeout=TIMEOUT, **resource_server.authenticated({"token": token})
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def revoke(self, token: str, *, client: Client, hint: str | None = None) -> requests.Response:
        form = {"token": token} | ({"token_type_hint": hint} if hint else {})
        return requests.post(self.endpoint("revocation"), timeout=TIMEOUT, **client.authenticated(form))

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            self.endpoint("userinfo"), headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT
        )

    def verify_id_token(
        self, id_token: str, *, expected_audience: str, expected_nonce: str
    ) -> dict[str, Any]:
        """OIDC Core 3.1.3.7: signature by a published key, iss, aud, exp, iat and the nonce we sent."""
        header = jwt.get_unverified_header(id_token)
        key = self.signing_key(header["kid"])
        assert header["alg"] == key.algorithm_name
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key,
            algorithms=[key.algorithm_name],
            audience=expected_audience,
            issuer=self.issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce"]},
        )
        assert claims["nonce"] == expected_nonce
        return claims

    def verify_access_token(self, access_token: str, *, expected_audience: str) -> dict[str, Any]:
        """RFC 9068 as a resource server checks it: typ at+jwt, a published key, iss, aud and exp."""
        header = jwt.get_unverified_header(access_token)
        assert header["typ"] == "at+jwt", header
        key = self.signing_key(header["kid"])
        claims: dict[str, Any] = jwt.decode(
            access_token,
            key=key,
            algorithms=[key.algorithm_name],
            audience=expected_audience,
            issuer=self.issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
        )
        return claims


# -- the user agent -----------------------------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> on a page: its action and the values its inputs would submit (a checkbox only
    when checked, as a browser does)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((found.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in found:
            if found.get("type") in ("checkbox", "radio") and "checked" not in found:
                return
            self.forms[-1][1][found["name"]] = found.get("value", "")


def forms_of(page: requests.Response) -> list[tuple[str, dict[str, str]]]:
    parser = _Forms()
    parser.feed(page.text)
    return [(urljoin(page.url, action), fields) for action, fields in parser.forms]


CANCEL_ACTION = "/cancel"


def path_of(page: requests.Response) -> str:
    return urlsplit(page.url).path


def is_password_page(page: requests.Response) -> bool:
    return bool(SIGNIN_PAGE.match(path_of(page))) and 'name="password"' in page.text


def is_factor_page(page: requests.Response) -> bool:
    return bool(FACTOR_PAGE.match(path_of(page))) and 'name="code"' in page.text


def is_recovery_codes_page(page: requests.Response) -> bool:
    return path_of(page).endswith("/recovery-codes") and page.text.count("<li><code>") == 10


def is_enrolment_page(page: requests.Response) -> bool:
    return bool(ENROL_PAGE.match(path_of(page))) and SECRET.search(page.text) is not None


def enrolment_secret(page: requests.Response) -> str:
    found = SECRET.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def location(response: requests.Response) -> str | None:
    target = response.headers.get("Location")
    return None if target is None else urljoin(response.url, target)


@dataclass(frozen=True)
class Attempt:
    """One authorization request as the client made it, and the first page the user agent settled on."""

    client: Client
    state: str
    nonce: str
    pkce: Pkce | None
    page: requests.Response

    def callback(self, response: requests.Response) -> dict[str, str]:
        """The parameters of a redirect to this client's redirect URI (anything else fails the test)."""
        target = location(response) if response.is_redirect else None
        assert target is not None and target.split("?")[0] == self.client.redirect_uri, (
            f"expected a redirect to {self.client.redirect_uri}, got {response.status_code} at {response.url}"
        )
        return dict(parse_qsl(urlsplit(target).query))


@dataclass
class Browser:
    """One user agent: its cookie jar and every response it received, in order."""

    provider: OpenIdProvider
    http: requests.Session = field(default_factory=requests.Session)
    seen: list[requests.Response] = field(default_factory=list)

    def authorize(self, client: Client, **params: str | None) -> Attempt:
        """Send the user agent to the authorization endpoint with PKCE (S256) and scope "openid profile".

        `params` add to or override the request; a parameter set to None is left out.
        """
        pkce = Pkce.new()
        query: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            **params,
        }
        sent = {name: value for name, value in query.items() if value is not None}
        page = self.visit(self.provider.metadata["authorization_endpoint"], params=sent)
        sent_pkce = pkce if sent.get("code_challenge") == pkce.challenge else None
        return Attempt(client, sent.get("state", ""), sent.get("nonce", ""), sent_pkce, page)

    def visit(self, url: str, **kwargs: Any) -> requests.Response:
        return self.settle(self.http.get(url, allow_redirects=False, timeout=TIMEOUT, **kwargs))

    def submit(self, page: requests.Response, **fields: str) -> requests.Response:
        """Fill in the page's form (keeping its hidden csrf_token) and post it: its only one, or the only
        one with all of `fields` (the factor page's code or recovery code); a sign-in page's "Cancel and
        go back" form does not count."""
        forms = [form for form in forms_of(page) if not form[0].endswith(CANCEL_ACTION)]
        if len(forms) > 1:
            forms = [form for form in forms if set(fields) <= set(form[1])]
        assert len(forms) == 1, f"expected one form at {page.url}: {page.text}"
        action, defaults = forms[0]
        assert defaults.get("csrf_token"), "every hosted form carries a csrf_token"
        response = self.http.post(action, data={**defaults, **fields}, allow_redirects=False, timeout=TIMEOUT)
        return self.settle(response)

    def submit_to(self, page: requests.Response, action_suffix: str, **fields: str) -> requests.Response:
        """Fill in the form of a page with several (the factor page) whose action ends so, and post it."""
        (action, defaults), *others = [form for form in forms_of(page) if form[0].endswith(action_suffix)]
        assert not others, f"several forms post to …{action_suffix} at {page.url}"
        response = self.http.post(action, data={**defaults, **fields}, allow_redirects=False, timeout=TIMEOUT)
        return self.settle(response)

    def settle(self, response: requests.Response) -> requests.Response:
        """Follow the provider's own redirects; stop at a page or at a redirect that leaves the provider."""
        self.seen.append(response)
        while response.is_redirect:
            target = location(response)
            assert target is not None
            if not target.startswith(self.provider.issuer + "/"):
                break
            response = self.http.get(target, allow_redirects=False, timeout=TIMEOUT)
            self.seen.append(response)
        return response

    def went_to(self, uri: str) -> bool:
        """Whether any response so far sent this user agent to `uri` (by redirect or auto-posted form)."""
        return any(
            (location(response) or "").startswith(uri) or f'action="{uri}' in response.text
            for response in self.seen
        )

    def sign_in(
        self, client: Client, account: Account, **params: str | None
    ) -> tuple[Attempt, dict[str, str]]:
        """The happy path: password, then the second factor (enrolling TOTP first when the user has none)."""
        attempt = self.authorize(client, **params)
        return attempt, attempt.callback(self.pass_sign_in(attempt.page, account))

    def pass_sign_in(self, page: requests.Response, account: Account) -> requests.Response:
        """From the password page: the password, then the second factor (enrolling TOTP first when the
        user has none); returns where the provider then sends the user agent."""
        assert is_password_page(page), page.text
        page = self.submit(page, username=account.username, password=account.password)
        if is_enrolment_page(page):
            account.authenticator = Authenticator(enrolment_secret(page))
            return self.save_recovery_codes(self.submit(page, code=account.authenticator.next_code()))
        assert is_factor_page(page), (page.status_code, page.headers.get("Location"), page.text)
        assert account.authenticator is not None
        return self.submit(page, code=account.authenticator.next_code())

    def save_recovery_codes(self, page: requests.Response) -> requests.Response:
        """The recovery codes shown after the first second factor: ticked as saved, then onwards."""
        assert is_recovery_codes_page(page), (page.status_code, page.url)
        return self.submit(page, saved="yes")


def create_account(live: LiveProvider, role: str) -> Account:
    """A user made with the CLI (`idp users create`), with a unique name and a random password."""
    account = Account(f"{role}-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(15))
    done = live.idp(
        "users",
        "create",
        account.username,
        "--email",
        f"{account.username}@example.test",
        "--password-stdin",
        stdin=account.password + "\n",
    )
    assert done.returncode == 0, done.stderr
    return account


def register_client(
    live: LiveProvider, name: str, *options: str, redirect_uri: str | None = None, redirect: bool = True
) -> Client:
    """A client made with the CLI (`idp clients create --json`), redirecting to `redirect_uri` (by default
    a loopback URI of its name); `redirect=False` registers none (a machine)."""
    redirect_uri = (redirect_uri or f"http://127.0.0.1/{name}/callback") if redirect else ""
    uri_option = ("--redirect-uri", redirect_uri) if redirect else ()
    done = live.idp("clients", "create", "--name", name, *uri_option, "--json", *options)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return Client(created["client_id"], redirect_uri, created.get("client_secret"))
