"""The vendor emulators of the connector tests, for the storm test here."""

from tests.connectors.conftest import (  # noqa: F401 (fixtures are found by name)
    _fresh_breakers,
    graph,
    identity,
    jira_server,
    mailgun,
    snow,
    tls_files,
)
