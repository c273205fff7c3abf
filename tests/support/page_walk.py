"""Every hosted page, once: a live provider (support.live) driven in Chromium through each page a person
or an administrator can meet, calling `visit(name, page)` on each.

The one source of truth for "every page": `make screenshots` photographs what it visits, the
accessibility test checks it with axe-core, a translated walk reads it in another language. The walk
finds its way by URLs, ids and form actions, never by the pages' words, so that it walks every
language alike (`context_options` sets the browser's, e.g. {"locale": "zh-CN"}).

`visit` may resize the page and read it, but must not navigate or change it: after each visit the walk
puts the viewport back and goes on from the same page.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyotp
from playwright.sync_api import Browser, BrowserContext, Page, expect

from support.administrator import attestation_settings, create_administrator, sign_in_administrator
from support.browser import DESKTOP, VirtualAuthenticator
from support.device_flow import DEVICE_GRANT, start
from support.live import LiveProvider, free_port, instance_without_redis, start_provider
from support.oidc_client import Browser as HttpBrowser
from support.oidc_client import Client, OpenIdProvider, Pkce, register_client
from support.step_up import serving

Visit = Callable[[str, Page], None]

USERNAME, PASSWORD = "robin", "a long enough password"
NEW_PASSWORD, TEMPORARY_PASSWORD = "seven quiet harbours at dusk", "only for the next sign-in"
ADMINISTRATOR, ADMINISTRATOR_PASSWORD = "root", "an administrator's long password"
SIGN_IN_QUOTA = 150  # sign-ins one address may start: the walk starts far fewer, then provokes the 429
OTHER_BROWSER = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
PAYMENT = {"type": "payment", "amount": "120.00", "currency": "EUR", "creditorName": "ACME Ltd"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SIGN_IN_PAGE = re.compile(r"/signin/[^/?]+$")
FACTOR_PAGE = re.compile(r"/signin/[^/]+/factor$")


def walk_settings(directory: Path) -> str:
    """What the provider needs for every page to be reachable: a payment type (the approval page), a
    scope that asks for a passkey and says why (the step-up page), trusted administrators' keys, a
    sign-in quota the walk can exhaust (the 429 page), a quick device flow."""
    return (
        f"{attestation_settings(directory)}"
        "[authorization_details.payment]\n"
        f'schema = "{EXAMPLES / "payment.schema.json"}"\n'
        'title = "Pay {amount} {currency} to {creditorName}"\nacr = "phr"\none_time = true\n'
        '[scopes."payments:write"]\nacr = "phr"\ndescription = "approve a payment"\n'
        f"[address_limits]\nsign_ins = {SIGN_IN_QUOTA}\naudited_failures = 1000000\n"
        "[device]\npoll_interval = 1\n"
    )


@contextmanager
def walk_provider(directory: Path) -> Iterator[LiveProvider]:
    """`idp serve` on localhost (WebAuthn needs a domain) with the walk's settings; stopped afterwards."""
    provider = start_provider(directory, host="localhost", extra=walk_settings(directory))
    try:
        yield provider
    finally:
        provider.stop()


def walk_every_page(
    provider: LiveProvider,
    browser: Browser,
    visit: Visit,
    *,
    context_options: Mapping[str, Any] | None = None,
) -> None:
    """Create the walk's person and apps with the CLI, then walk: signed out, first sign-in, the
    sign-in's other pages, the account pages, step-up and approval, the device flow, password resets,
    signing out, the admin console and the error pages."""
    options = {"viewport": DESKTOP, **(context_options or {})}
    created = provider.idp(
        "users",
        "create",
        USERNAME,
        "--email",
        f"{USERNAME}@example.com",
        "--email-verified",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    scopes = ("openid", "profile", "email", "offline_access", "payments:write")
    device = register_client(
        provider, "Kitchen display", "--public", "--grant-type", DEVICE_GRANT, redirect=False
    )
    with serving(the_app, free_port()) as app_origin:
        app = register_client(
            provider,
            "Console app",
            "--public",
            *(f"--scope={scope}" for scope in scopes),
            redirect_uri=f"{app_origin}/callback",
        )
        context = browser.new_context(**options)
        try:
            walk = Walk(provider, OpenIdProvider(provider.issuer), app, visit, context)
            walk.signed_out()
            walk.first_sign_in()
            walk.sign_in_pages()
            walk.account_pages()
            walk.sessions(browser.new_context(**{**options, "user_agent": OTHER_BROWSER}))
            walk.password_change()
            walk.step_up_and_approval()
            walk.device_flow(device)
            walk.password_reset()
            walk.temporary_password()
            walk.sign_out()
            walk.admin_console(browser.new_context(**options), browser.new_context(**options))
            walk.error_pages()
        finally:
            context.close()


@dataclass
class Walk:
    """The person's browser (one context, a virtual authenticator in it) and what they hold: the
    authenticator app's key and their recovery codes."""

    provider: LiveProvider
    op: OpenIdProvider
    app: Client
    visit: Visit
    context: BrowserContext
    page: Page = field(init=False)
    totp: pyotp.TOTP = field(init=False)
    recovery_codes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page = self.context.new_page()
        VirtualAuthenticator.attach(self.context, self.page, backup_eligible=True)

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def seen(self, name: str, page: Page | None = None) -> None:
        """`visit` the page as it is now, then put its viewport back."""
        shown = page or self.page
        size = shown.viewport_size
        self.visit(name, shown)
        if size is not None and shown.viewport_size != size:
            shown.set_viewport_size(size)

    # -- steps every section uses -----------------------------------------------------------------

    def authorize(self, **extra: str) -> Pkce:
        """Start a sign-in at the app's request (PKCE, "openid profile" unless `extra` says otherwise)."""
        pkce = Pkce.new()
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": self.app.redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        self.page.goto(f"{self.op.metadata['authorization_endpoint']}?{urlencode(params)}")
        return pkce

    def submit(self, form: str, page: Page | None = None, **fields: str) -> None:
        """Fill the named fields of the form `form` selects, submit it, and wait for the next page."""
        target = page or self.page
        chosen = target.locator(form)
        for name, value in fields.items():
            chosen.locator(f"[name={name}]").fill(value)
        with target.expect_navigation():
            chosen.locator("button[type=submit]").first.click()

    def click(self, selector: str, page: Page | None = None) -> None:
        target = page or self.page
        with target.expect_navigation():
            target.locator(selector).click()

    def at_the_app(self) -> dict[str, str]:
        """The app's redirect URI was reached: its parameters."""
        self.page.wait_for_url(f"{self.app.redirect_uri}?*")
        return dict(parse_qsl(urlsplit(self.page.url).query))

    def use_passkey(self, page: Page | None = None) -> None:
        """The factor page's passkey button; the virtual authenticator answers, the page moves on."""
        target = page or self.page
        button = target.locator("#passkey-second-factor")
        expect(button).to_be_visible()
        before = target.url
        button.click()
        target.wait_for_url(lambda url: url != before)
        target.wait_for_load_state()

    def password_step(self, page: Page | None = None, password: str = PASSWORD) -> None:
        target = page or self.page
        target.wait_for_url(SIGN_IN_PAGE)
        self.submit(
            f"form[action$='{urlsplit(target.url).path}']", target, username=USERNAME, password=password
        )

    # -- the walk ---------------------------------------------------------------------------------

    def signed_out(self) -> None:
        """The front page, then the password page with its mistakes and the forgotten password."""
        self.page.goto(f"{self.issuer}/")
        self.seen("home")
        self.authorize()
        self.page.wait_for_url(SIGN_IN_PAGE)
        self.seen("signin-password")
        self.click(".forgot a")
        self.seen("forgot-password")
        self.submit("form[action$='/forgot']", who=USERNAME)
        self.seen("forgot-password-sent")
        self.click("a[href*='/signin/']")
        self.password_step(password="not the password")
        self.seen("signin-password-wrong")

    def first_sign_in(self) -> None:
        """The choice of a first factor (a passkey offered first), the app's key by hand and a wrong code,
        then the recovery codes shown once."""
        self.password_step()
        expect(self.page.locator("#passkey-register")).to_be_visible()
        self.seen("enrol-choice")
        self.page.locator(".method details summary").click()
        self.totp = pyotp.TOTP(self.page.locator("#secret").inner_text().strip())
        self.seen("enrol-key-by-hand")
        self.submit("form[action$='/enrol/totp']", code="000000")
        self.seen("enrol-wrong-code")
        self.submit("form[action$='/enrol/totp']", code=self.totp.now())
        self.recovery_codes = self.page.locator("#recovery-codes code").all_inner_texts()
        assert len(self.recovery_codes) == 10, self.page.url
        self.seen("first-recovery-codes")
        self.page.locator("input[name=saved]").check()
        self.page.locator("form[action$='/recovery-codes'] button[type=submit]").click()
        self.at_the_app()

    def sign_in_pages(self) -> None:
        """Consent (whose code becomes an offline grant), the choice of account, and the second factor
        with its wrong code, wrong recovery code and the page after a recovery code."""
        pkce = self.authorize(prompt="consent", scope="openid profile email offline_access")
        self.seen("consent")
        self.click("button[value=allow]")
        answer = self.op.token(
            self.app,
            grant_type="authorization_code",
            code=self.at_the_app()["code"],
            redirect_uri=self.app.redirect_uri,
            code_verifier=pkce.verifier,
        )
        assert "refresh_token" in answer.json(), answer.text  # the offline access page lists it

        self.authorize(prompt="select_account")
        self.seen("select-account")
        self.page.locator("button[value=continue]").click()
        self.at_the_app()

        self.authorize(max_age="0")
        self.page.wait_for_url(FACTOR_PAGE)
        self.seen("signin-factor")
        self.submit("form[action$='/factor']", code="000000")
        self.seen("signin-factor-wrong-code")
        self.page.locator("details.method summary").click()
        self.submit("form[action$='/recovery']", recovery_code="not-a-code")
        self.seen("signin-factor-wrong-recovery-code")
        self.submit("form[action$='/recovery']", recovery_code=self.recovery_codes.pop())
        self.seen("recovery-used")
        self.page.locator("#continue").click()
        self.at_the_app()

    def account_pages(self) -> None:
        """Each page of the account: a second app and a passkey added, so that the lists have several
        rows; new recovery codes; an email address refused, then its code page."""
        account = f"{self.issuer}/account"
        self.page.goto(f"{account}/totp/new")
        self.seen("account-totp")
        self.page.locator("details summary").click()
        tablet = pyotp.TOTP(self.page.locator("#secret").inner_text().strip())
        self.submit("form[action$='/totp/new']", name="Tablet", code="000000")
        self.seen("account-totp-wrong-code")
        self.page.locator("details summary").click()
        self.submit("form[action$='/totp/new']", name="Tablet", code=tablet.now())

        self.page.goto(f"{account}/passkeys/new")
        self.seen("account-passkey")
        self.page.locator("#passkey-name").fill("Laptop")
        self.page.locator("#passkey-register").click()
        self.page.wait_for_url(account)
        expect(self.page.locator("li.factor")).to_have_count(3)
        self.seen("account")
        self.click("li.factor:has-text('Tablet') a[href$='/remove']")
        self.seen("account-remove-confirm")

        self.page.goto(f"{account}/recovery-codes")
        self.seen("account-recovery-codes")
        self.click("a[href$='/recovery-codes/new']")
        self.seen("account-recovery-codes-confirm")
        self.submit("form[action$='/recovery-codes']")
        self.recovery_codes = self.page.locator("#recovery-codes code").all_inner_texts()
        assert len(self.recovery_codes) == 10, self.page.url
        self.seen("account-recovery-codes-new")

        self.page.goto(f"{account}/email/new")
        self.seen("account-email")
        self.submit("form[action$='/email/new']", address="robin@localhost")
        self.seen("account-email-refused")
        self.submit("form[action$='/email/new']", address="robin@example.net")
        self.seen("account-email-verify")
        self.submit("form[action$='/email/verify']", code="000000")
        self.seen("account-email-verify-wrong-code")

        for path, name in [
            ("/applications", "account-applications"),
            ("/offline-access", "account-offline-access"),
            ("/history", "account-history"),
        ]:
            self.page.goto(account + path)
            self.seen(name)

    def sessions(self, elsewhere: BrowserContext) -> None:
        """Another browser (Firefox on Ubuntu) signs in with a recovery code: the sessions page lists
        it with its own button, and the confirmation before ending every other session."""
        try:
            other = elsewhere.new_page()
            other.goto(f"{self.issuer}/account")
            self.password_step(other)
            other.wait_for_url(FACTOR_PAGE)
            other.locator("details.method summary").click()
            self.submit("form[action$='/recovery']", other, recovery_code=self.recovery_codes.pop())
            self.click("#continue", other)  # past the page that counts the codes left
            other.wait_for_url(re.compile(r"/account$"))
        finally:
            elsewhere.close()
        self.page.goto(f"{self.issuer}/account/sessions")
        expect(self.page.locator("li.session")).to_have_count(2)
        self.seen("account-sessions")
        self.click("a[href$='/sessions/end-others']")
        self.seen("account-end-sessions-confirm")

    def password_change(self) -> None:
        """Every proof again for this page (what the session lacks), then the form and its refusals."""
        self.page.goto(f"{self.issuer}/account/password")
        if SIGN_IN_PAGE.search(self.page.url):
            self.seen("account-password-reauthenticate")
            self.password_step()
        self.page.wait_for_url(FACTOR_PAGE)
        self.use_passkey()
        self.page.wait_for_url(re.compile(r"/account/password$"))
        self.seen("account-password")
        form = "form[action$='/account/password']"
        self.submit(form, password="password1234", repeat="password1234")
        self.seen("account-password-refused")
        self.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD + " again")
        self.seen("account-password-differ")

    def step_up_and_approval(self) -> None:
        """A scope that asks for a passkey (cancelled), then a payment approved with the passkey."""
        self.authorize(scope="openid payments:write", max_age="0")
        self.page.wait_for_url(FACTOR_PAGE)
        self.seen("step-up")
        self.page.locator("form.cancel button").click()
        assert self.at_the_app()["error"] == "access_denied"

        self.authorize(authorization_details=json.dumps([PAYMENT]))
        self.page.wait_for_url(FACTOR_PAGE)
        expect(self.page.locator("#transaction-details li")).to_have_count(1)
        self.seen("transaction-approval")
        self.use_passkey()
        self.at_the_app()

    def device_flow(self, device: Client) -> None:
        """The code page (a wrong code first), the confirmation, the answer; then a device denied."""
        approved, denied = (start(self.op, device) for _ in range(2))
        self.page.goto(f"{self.issuer}/device")
        self.seen("device")
        self.submit("form[action$='/device']", user_code="WRONG-CODE")
        self.seen("device-wrong-code")
        self.submit("form[action$='/device']", user_code=approved.user_code)
        self.seen("device-confirm")
        self.click("button[value=allow]")
        if FACTOR_PAGE.search(self.page.url):
            self.use_passkey()
        expect(self.page.locator("#device-result")).to_be_visible()
        self.seen("device-done")
        self.page.goto(denied.answer["verification_uri_complete"])
        self.submit("form[action$='/device']")
        self.click("button[value=deny]")
        self.seen("device-denied")

    def password_reset(self) -> None:
        """The administrator's reset link: its page, the second factor, the new password (refused once),
        the account page that says it changed, and the spent link."""
        made = self.provider.idp("users", "reset-link", USERNAME)
        assert made.returncode == 0, made.stderr
        link = made.stdout.strip()
        self.page.goto(link)
        self.seen("reset-link")
        self.submit(f"form[action$='{urlsplit(link).path}']")
        self.page.wait_for_url(FACTOR_PAGE)
        self.seen("reset-second-factor")
        self.use_passkey()
        self.seen("new-password")
        form = "form[action$='/new-password']"
        self.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD + " again")
        self.seen("new-password-refused")
        self.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD)
        self.seen("account-after-password-reset")
        self.page.goto(link)
        self.seen("reset-link-used")

    def temporary_password(self) -> None:
        """A password set for one sign-in: the page that asks for the user's own (refused once)."""
        done = self.provider.idp(
            "users",
            "set-password",
            USERNAME,
            "--temporary",
            "--password-stdin",
            stdin=TEMPORARY_PASSWORD + "\n",
        )
        assert done.returncode == 0, done.stderr
        self.authorize()
        self.password_step(password=TEMPORARY_PASSWORD)
        self.seen("signin-new-password")
        form = "form[action$='/password/new']"
        self.submit(form, password="password1234", repeat="password1234")
        self.seen("signin-new-password-refused")
        self.submit(form, password=PASSWORD, repeat=PASSWORD)
        if FACTOR_PAGE.search(self.page.url):
            self.use_passkey()
        self.at_the_app()

    def sign_out(self) -> None:
        self.page.goto(f"{self.issuer}/logout")
        self.seen("sign-out-confirm")
        self.submit("form[action$='/logout/confirm']")
        self.seen("signed-out")

    def admin_console(self, console: BrowserContext, newcomer: BrowserContext) -> None:
        """An administrator signed in with an attested key (over HTTP: Chromium's virtual authenticator
        cannot attest) and their session handed to Chromium; another one meets the key enrolment page."""
        try:
            key = create_administrator(self.provider, ADMINISTRATOR, ADMINISTRATOR_PASSWORD)
            http = HttpBrowser(self.op)
            users = sign_in_administrator(
                http,
                http.visit(f"{self.issuer}/admin/users"),
                username=ADMINISTRATOR,
                password=ADMINISTRATOR_PASSWORD,
                key=key,
            )
            assert users.status_code == 200 and users.url.endswith("/admin/users"), users.url
            console.add_cookies(
                [{"name": c.name, "value": c.value or "", "url": self.issuer} for c in http.http.cookies]
            )
            page = console.new_page()
            page.goto(f"{self.issuer}/admin/users")
            self.seen("admin-users", page)
            self.click(f"a[href*='/admin/users/']:text-is('{USERNAME}')", page)
            self.seen("admin-user", page)
            page.goto(f"{self.issuer}/admin/clients")
            self.seen("admin-clients", page)
            self.click(f"a[href$='/admin/clients/{self.app.client_id}']", page)
            self.seen("admin-client", page)
            page.goto(f"{self.issuer}/admin/audit")
            self.seen("admin-audit", page)
            page.goto(f"{self.issuer}/admin/audit?user=nobody-by-this-name")
            self.seen("admin-audit-refused", page)

            create_administrator(self.provider, "keeper", ADMINISTRATOR_PASSWORD)
            first = newcomer.new_page()
            first.goto(f"{self.issuer}/admin/users")
            first.wait_for_url(SIGN_IN_PAGE)
            self.submit(
                f"form[action$='{urlsplit(first.url).path}']",
                first,
                username="keeper",
                password=ADMINISTRATOR_PASSWORD,
            )
            first.wait_for_url(re.compile(r"/enrol/passkey$"))
            self.seen("enrol-security-key", first)
        finally:
            console.close()
            newcomer.close()

    def error_pages(self) -> None:
        """400, 404 and 413 as any visitor meets them; 429 once this address spent its sign-ins; 503
        from one more node whose Redis cannot be reached."""
        self.error_page(400, f"{self.issuer}/authorize?client_id=no-such-client&response_type=code")
        self.error_page(404, f"{self.issuer}/no-such-page")
        with self.page.expect_navigation() as posted:
            self.page.evaluate(TOO_LARGE_FORM, f"{self.issuer}/logout/confirm")
        assert posted.value is not None and posted.value.status == 413
        self.seen("error-413")
        for _ in range(SIGN_IN_QUOTA + 1):
            if self.page.request.get(f"{self.issuer}/account", max_redirects=0).status == 429:
                break
        self.error_page(429, f"{self.issuer}/account")
        with instance_without_redis(self.provider) as broken:
            self.error_page(503, f"{broken.origin}/account")

    def error_page(self, status: int, url: str) -> None:
        answer = self.page.goto(url)
        assert answer is not None and answer.status == status, (url, answer and answer.status)
        self.seen(f"error-{status}")


# A form posted the way a browser posts one, with a body larger than the provider accepts.
TOO_LARGE_FORM = """action => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  const field = document.createElement("input");
  field.type = "hidden";
  field.name = "padding";
  field.value = "x".repeat(100 * 1024);
  form.append(field);
  document.body.append(form);
  form.submit();
}"""


def the_app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The app at its redirect URI: a page; the walk reads the parameters from the URL."""
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<!doctype html><title>The app</title><p>Back at the app."]
