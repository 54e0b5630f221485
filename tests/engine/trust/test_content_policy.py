"""The content checks shared by the knowledge-base hygiene scan and the outgoing-message policy."""

from __future__ import annotations

import pytest

from engine.trust.content_policy import (
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
    payment_requests,
    phone_numbers,
    refang,
    secret_requests,
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
