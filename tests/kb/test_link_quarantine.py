"""Articles whose links point outside the allowed domains are quarantined, and `python -m kb add` and the log say
so in one sentence that names the domains and the setting (the demo articles with the demo feed off, issue 23)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings

ARTICLE = (
    "# VPN\nTo reset your VPN profile, open https://help.northwind-demo.example/vpn and follow the steps there.\n\n"
    "## Printers\nReseat the toner cartridge and print a test page.\n"
)


def _add(folder: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> int:
    import kb.__main__ as cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    return cli.main(["add", "--quiet", str(folder)])


def test_kb_add_names_the_domains_that_quarantined_chunks(
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "vpn.md").write_text(ARTICLE)
    with caplog.at_level(logging.WARNING, logger="kb.indexer"):
        assert _add(folder, settings, monkeypatch) == 0
    sentence = (
        "1 chunk(s) quarantined because links point to domains not in OUTGOING_ALLOWED_DOMAINS: "
        "help.northwind-demo.example"
    )
    assert sentence in capsys.readouterr().out
    assert sentence in caplog.text


def test_nothing_is_said_when_the_domain_is_allowed(
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "vpn.md").write_text(ARTICLE)
    allowed = settings.model_copy(update={"OUTGOING_ALLOWED_DOMAINS": "northwind-demo.example"})
    assert _add(folder, allowed, monkeypatch) == 0
    assert "quarantined because links point" not in capsys.readouterr().out
