"""The content checks shared by the knowledge-base hygiene scan and the outgoing-message policy."""

from __future__ import annotations

import pytest

from engine.trust.content_policy import (
    Link,
    bank_account_numbers,
    content_reasons,
    crypto_wallets,
    domain_allowed,
    domains,
    email_addresses,
    foreign_domains,
    formula_cells,
    iban_valid,
    ibans,
    outgoing_items,
    parse_link,
    payment_requests,
    phone_numbers,
    refang,
    secret_requests,
    unlisted_contacts,
    urls,
)

ALLOWED = {"no-touch.example", "microsoft.com"}


def test_links_addresses_and_bare_domains_are_found_defanged_or_not() -> None:
    text = (
        "Open hxxps://login-no-touch[.]example/reset?u=1, or www.portal.example.org/x. "
        "Mail Help@Phish.IO or helpdesk[at]evil[.]com; see sso.no-touch.io and README.md, config.json."
    )
    assert refang("hxxp://a[.]b[dot]c") == "http://a.b.c"
    assert urls(text) == ["https://login-no-touch.example/reset?u=1", "www.portal.example.org/x"]
    assert email_addresses(text) == ["help@phish.io", "helpdesk@evil.com"]
    assert domains(text) == [
        "login-no-touch.example",
        "www.portal.example.org",
        "phish.io",
        "evil.com",
        "sso.no-touch.io",
    ]


@pytest.mark.parametrize(
    ("domain", "allowed"),
    [
        ("no-touch.example", True),
        ("SSO.No-Touch.Example.", True),
        ("login.microsoft.com", True),
        ("no-touch.example.evil.com", False),
        ("login-no-touch.example", False),
        ("microsoft.com.co", False),
        ("xmicrosoft.com", False),
    ],
)
def test_domain_allowed_matches_the_domain_and_its_subdomains_only(domain: str, allowed: bool) -> None:
    assert domain_allowed(domain, ALLOWED) is allowed


def test_foreign_domains_are_those_off_the_allow_list() -> None:
    text = "Sign in at https://portal.no-touch.example, not at https://no-touch.example.login-check.top/."
    assert foreign_domains(text, ALLOWED) == ["no-touch.example.login-check.top"]
    assert foreign_domains(text, set()) == ["portal.no-touch.example", "no-touch.example.login-check.top"]


def test_phone_numbers_and_not_dates_or_versions() -> None:
    text = "Call +44 20 7946 0958 or (030) 123-4567; released 2026-03-02, version 10.4.12."
    assert phone_numbers(text) == ["+442079460958", "0301234567"]


def test_bank_details() -> None:
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB83 WEST 1234 5698 7654 32")
    text = "Pay to GB82 WEST 1234 5698 7654 32, account number: 12345678, sort code 40-47-84. Order ZZ12 3456 7890 1."
    assert ibans(text) == ["GB82WEST12345698765432"]
    assert bank_account_numbers(text) == ["GB82WEST12345698765432", "12345678", "404784"]
    assert payment_requests("From today please use our new settlement account.") == ["new settlement account"]
    assert payment_requests("Updated bank details are attached; SWIFT: DEUTDEFF") == [
        "Updated bank details",
        "SWIFT:",
    ]
    assert payment_requests("Your account settings are under Profile.") == []


def test_crypto_wallets() -> None:
    text = (
        "Send to 0x52908400098527886E0F7030069857D2E4169EE7 or bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq "
        "or 1BoatSLRHtKNngkdXEeobR76b53LETtpyT; build 3bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb is not one."
    )
    assert crypto_wallets(text) == [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Please reply with your password and MFA code.",
        "Send us the recovery codes so we can restore access.",
        "To verify you, tell the agent your current password.",
        "What is your one-time passcode?",
        "Forward the SMS code you just received to this address.",
    ],
)
def test_requests_to_hand_over_secrets(text: str) -> None:
    assert secret_requests(text)


@pytest.mark.parametrize(
    "text",
    [
        "Enter your password on the sign-in page.",
        "Type the MFA code from your authenticator app into the prompt.",
        "Never share your password with anyone, including the help desk.",
        "Do not ever give anyone your recovery codes.",
        "Choose a new password and confirm it.",
    ],
)
def test_ordinary_help_desk_text_is_not_a_secret_request(text: str) -> None:
    assert secret_requests(text) == []


def test_formula_cells() -> None:
    text = (
        'title: Guide; link: =HYPERLINK("http://evil.example","Click"); price: +SUM(A1:A9)\n'
        "cmd: -2+3+cmd|' /C calc'!A0; web: @WEBSERVICE(\"http://x\"); dde: =cmd|' /C notepad'!A1\n"
        "- Open the portal (top right)\n- Click Save; total = 12 (approx.); a-b(c); user@example.com(1)"
    )
    assert formula_cells(text) == ["=HYPERLINK(", "+SUM(", "-2+3+cmd|", "@WEBSERVICE(", "=cmd|"]


def test_content_reasons_name_each_kind_of_finding() -> None:
    text = (
        "Our new settlement account is GB82 WEST 1234 5698 7654 32. Reply with your password. "
        'Log in at https://n0-touch.example. =HYPERLINK("x")'
    )
    reasons = content_reasons(text, ALLOWED)
    assert [reason.split(":")[0] for reason in reasons] == [
        "asks for a secret",
        "bank or payment details",
        "links or addresses outside the allowed domains",
        "spreadsheet formula",
    ]
    assert content_reasons("Restart the router and sign in at https://portal.no-touch.example.", ALLOWED) == []


CONTACTS = {"+442079464357", "security@no-touch.example"}
LINK_TRICKS = {
    "markdown link showing our portal, protocol-relative target": (
        "[portal.no-touch.example](//evil.example/reset)",
        "evil.example",
    ),
    "backslash before userinfo": ("Sign in at https://evil.example\\@help.no-touch.example/sso", "evil.example"),
    "punycode look-alike": ("Open https://nо-touch.example/reset (Cyrillic o).", "xn--n-touch-9ig.example"),
    "unusual TLD, bare": ("Your new portal is reset-portal.support or help.portal.zip", "reset-portal.support"),
    "HTML anchor": ('<a href="https:&#x2F;&#x2F;evil.example/x">help.no-touch.example</a>', "evil.example"),
    "link text showing a foreign domain": ("[evil.example](https://portal.no-touch.example/)", "evil.example"),
}


@pytest.mark.parametrize("trick", LINK_TRICKS)
def test_link_tricks_resolve_to_the_host_a_browser_opens(trick: str) -> None:
    text, host = LINK_TRICKS[trick]
    assert host in foreign_domains(text, ALLOWED)
    assert any(reason.startswith("links or addresses outside") for reason in content_reasons(text, ALLOWED))


def test_links_are_parsed_as_a_browser_parses_them() -> None:
    assert parse_link("https://evil.example\\@help.no-touch.example/").host == "evil.example"
    assert parse_link("//evil.example/x").host == "evil.example"
    assert parse_link("/\\evil.example/x").host == "evil.example"
    assert parse_link("https:evil.example").host == "evil.example"
    assert parse_link("HTTPS://Portal.No-Touch.Example./x").host == "portal.no-touch.example"
    assert parse_link("https://ex%61mple.com/").host == "example.com"
    assert parse_link("http://3232235777/").host == "192.168.1.1"
    assert parse_link("/kb/vpn") == Link("/kb/vpn", "", "")
    assert domain_allowed("пример.рф", {"xn--e1afmkfd.xn--p1ai"})


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("[Open the portal](javascript:alert(document.cookie))", "javascript"),
        ("<a href='data:text/html;base64,PHNjcmlwdD4='>help</a>", "data"),
        ("Click <a href=vbscript:msgbox(1)>here</a>", "vbscript"),
        ("The share is at file:///C:/Windows/system32", "file"),
        ("[Docs](ftp://files.no-touch.example/guide.pdf)", "ftp"),
    ],
)
def test_schemes_other_than_http_are_never_allowed_and_named(text: str, scheme: str) -> None:
    [reason] = [reason for reason in content_reasons(text, ALLOWED) if reason.startswith("link scheme")]
    assert f"'{scheme}: " in reason


def test_bare_domains_need_a_real_or_reserved_tld_not_a_list_of_common_ones() -> None:
    text = (
        "Go to help.nw-portal.mov, login.app, reset.support, portal.xn--p1ai or intranet.example. "
        "Events: report.completed, user.invited; call JSON.stringify(req.body);\n"
        "attach README.md, setup.zip and crash.log."
    )
    assert domains(text) == ["help.nw-portal.mov", "login.app", "reset.support", "portal.xn--p1ai", "intranet.example"]


def test_phone_numbers_and_addresses_only_from_the_contact_points() -> None:
    text = "Out of hours call +44 20 7946 4357 or 020 7946 4357; write to security@no-touch.example."
    assert unlisted_contacts(text, CONTACTS) == []
    swapped = "Out of hours call +44 20 7946 0999 or 0044 20 7946 0998, or write to helpdesk@no-touch.example."
    assert unlisted_contacts(swapped, CONTACTS) == ["+442079460999", "+442079460998", "helpdesk@no-touch.example"]
    [reason] = content_reasons(swapped, ALLOWED, CONTACTS)
    assert reason.startswith("phone number or e-mail address not on the desk's contact points: '+442079460999'")
    csv = "team,phone\nservice desk,+44 20 7946 4357\nout of hours,+44 20 7946 0111\n"
    assert unlisted_contacts(csv, CONTACTS) == ["+442079460111"]
    assert content_reasons(text, ALLOWED) != [], "with no contact points listed every number and address is a finding"


def test_ip_addresses_and_iban_digits_are_not_phone_numbers() -> None:
    assert phone_numbers("Allow 198.51.100.20 and 192.168.100.0/24; IBAN GB82 WEST 1234 5698 7654 32.") == []
    assert phone_numbers("Appelez le 01.23.45.67.89") == ["0123456789"]


def test_outgoing_items_say_what_forbids_each() -> None:
    text = "Call +44 20 7946 0999, see [help](javascript:x()) or https://evil.example/ and www.no-touch.example/vpn"
    problems = {item.shown: item.problem for item in outgoing_items(text, ALLOWED, CONTACTS)}
    assert problems == {
        "+44 20 7946 0999": "is not one of the desk's contact points",
        "javascript:x()": "uses the javascript: scheme, which is never allowed",
        "https://evil.example/": "points outside the allowed domains",
        "www.no-touch.example/vpn": "",
    }
