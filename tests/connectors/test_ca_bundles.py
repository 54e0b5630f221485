"""A connector's own CA bundle (IMAP_CA_BUNDLE, SMTP_CA_BUNDLE, SNOW_CA_BUNDLE, JIRA_CA_BUNDLE, MS_GRAPH_CA_BUNDLE,
MAILGUN_CA_BUNDLE) adds a private CA to the system trust store for that connector alone; CONNECTOR_CA_BUNDLE still
replaces the store for all of them."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest
import requests

from connectors.base import ConfigurationError
from connectors.http import combined_bundle, tls_context, verify_setting
from connectors.imap import ImapSource
from connectors.registry import connectors
from engine.core.settings import Settings
from tests.connectors.conftest import with_settings
from tests.connectors.test_imap_smtp import mail
from tests.emulators.base import running
from tests.emulators.graph import IdentityEmulator
from tests.emulators.imap import ImapEmulator
from tests.factories import imap_values


def _certificates(path: str) -> int:
    return Path(path).read_text(encoding="ascii").count("-----BEGIN CERTIFICATE-----")


def test_every_remote_connector_has_its_own_ca_bundle_setting() -> None:
    own = {entry.name: [f for f in entry.fields if f.endswith("_CA_BUNDLE")] for entry in connectors()}
    for name in ("servicenow", "jira", "imap", "smtp", "outlook", "mailgun"):
        assert len(own.get(name, [])) == 1, (name, own.get(name))


def test_an_own_bundle_adds_to_the_system_store_for_https(
    plain_settings: Settings, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, certificate, key = tls_files
    assert verify_setting(plain_settings) is True
    added = verify_setting(plain_settings, str(ca))
    assert isinstance(added, str) and _certificates(added) == _certificates(certifi.where()) + 1
    assert verify_setting(plain_settings, str(ca)) == added, "written once per content"
    replaced = with_settings(plain_settings, CONNECTOR_CA_BUNDLE=str(ca))
    assert verify_setting(replaced) == str(ca), "CONNECTOR_CA_BUNDLE alone still replaces the store"
    for identity in running(IdentityEmulator(certificate=(certificate, key))):
        assert requests.get(identity.url + "/", verify=added, timeout=5).status_code < 500
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(identity.url + "/", verify=True, timeout=5)


def test_an_own_bundle_adds_to_the_system_store_for_imap(
    plain_settings: Settings, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, certificate, key = tls_files
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert tls_context(plain_settings, str(ca)).cert_store_stats()["x509_ca"] == system + 1
    server = ImapEmulator(tls=(certificate, key)).start()
    try:
        server.append(mail("Over TLS"))
        values = {**imap_values(server), "IMAP_SECURITY": "ssl", "IMAP_CA_BUNDLE": str(ca)}
        [page] = list(ImapSource(with_settings(plain_settings, **values)).poll(None))
        assert [item.subject for item in page.items] == ["Over TLS"]
    finally:
        server.stop()


def test_an_unreadable_bundle_names_the_file(plain_settings: Settings, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match=r"missing\.pem"):
        combined_bundle(certifi.where(), missing)
    with pytest.raises(ConfigurationError, match=r"missing\.pem"):
        tls_context(plain_settings, missing)
