"""The final check of every automatic message: each word comes from a text we trust, or the message is held."""

from __future__ import annotations

from engine.core.models import Ticket
from engine.core.templates import acknowledgement, resolution_email, template_texts, to_html
from engine.trust.provenance import RenderedMessage, cited_texts, untrusted_text

SIGNATURE = "Kind regards,\nThe support desk"
PASSAGE = "1. Open the VPN client.\n2. Choose TCP 443 under Settings > Protocol."
EVIDENCE = {"cited": True, "source_kind": "kb", "title": "VPN setup", "location": "section VPN > Troubleshooting"}


def trusted(*extra: str) -> list[str]:
    return [*template_texts({}), SIGNATURE, "TCKT-7", "there", *extra]


def resolution(steps: tuple[str, ...] = ()) -> RenderedMessage:
    subject, body = resolution_email(
        "TCKT-7",
        None,
        "your request",
        list(steps or ("Open the VPN client.", "Choose TCP 443 under Settings > Protocol.")),
        ["VPN setup (section Troubleshooting)"],
        SIGNATURE,
        {},
    )
    return RenderedMessage(subject, body, to_html(body))


def test_a_message_built_from_templates_settings_and_cited_knowledge_passes() -> None:
    ack = acknowledgement(Ticket(id=7, requester_name="Dana"), SIGNATURE)
    assert untrusted_text(RenderedMessage(ack.subject, ack.body_text, ack.body_html), trusted()) == []
    knowledge = cited_texts([{**EVIDENCE, "text": PASSAGE}])
    assert untrusted_text(resolution(), trusted(*knowledge)) == []


def test_a_word_run_from_nowhere_trusted_holds_the_message() -> None:
    knowledge = cited_texts([{**EVIDENCE, "text": PASSAGE}])
    for name in ("Verify at nw-selfservice.example", "パスワード再確認はこちら"):
        body = resolution().body_text.replace("Hello there,", f"Hello {name},")
        [reason] = untrusted_text(RenderedMessage("Re: your request [TCKT-7]", body), trusted(*knowledge))
        assert "verify at nw selfservice example" in reason or "パスワード再確認はこちら" in reason
    steps = ("Open the VPN client.", "Then confirm your password at the new portal.")
    [reason] = untrusted_text(resolution(steps=steps), trusted(*knowledge))
    assert "then confirm your password at the new portal" in reason


def test_smuggled_invisible_text_html_only_text_and_header_values_are_checked() -> None:
    smuggled = "".join(chr(0xE0000 + ord(letter)) for letter in "call me")
    assert untrusted_text(RenderedMessage("Re: your request [TCKT-7]", f"Hello there{smuggled},"), trusted())
    hidden = RenderedMessage("Re: your request [TCKT-7]", "Hello there,", "<p>Hello there,</p><!-- wire the refund -->")
    assert untrusted_text(hidden, trusted()) == ["the message carries text from no trusted source ('wire the refund')"]
    linked = RenderedMessage("Re: your request [TCKT-7]", "Hello there,", '<a href="https://evil.example">Hello</a>')
    assert untrusted_text(linked, trusted())
    headed = RenderedMessage("Re: your request [TCKT-7]", "Hello there,", headers=("Reply to park.evil.example",))
    assert untrusted_text(headed, trusted())


def test_only_cited_trusted_knowledge_counts() -> None:
    evidence = [
        {**EVIDENCE, "text": "cited"},
        {**EVIDENCE, "cited": False, "text": "uncited"},
        {**EVIDENCE, "source_kind": "web", "text": "web"},
        {**EVIDENCE, "quarantine": "link outside the allowed domains", "text": "quarantined"},
        {**EVIDENCE, "quarantine": "link", "approved_by": "lead", "text": "approved"},
    ]
    texts = cited_texts(evidence)
    assert {"cited", "approved"} <= set(texts) and not {"uncited", "web", "quarantined"} & set(texts)
    assert {"VPN setup", "section VPN", "Troubleshooting"} <= set(texts)
