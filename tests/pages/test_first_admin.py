"""A fresh install: nobody can sign in until the person holding the server's setup code creates the first admin."""

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import AuditEntry, Operator
from engine.core.settings import Settings
from engine.operators.auth import setup_code_path
from tests.pages.conftest import PASSWORD, open_page, sign_in, texts


def test_first_admin_needs_the_setup_code_from_the_server(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        session.execute(delete(Operator))
    at = open_page("Home.py", user=None)
    assert "Create the first admin" in texts(at)
    code = setup_code_path(app).read_text(encoding="utf-8").strip()
    assert oct(setup_code_path(app).stat().st_mode & 0o777) == "0o600"

    def create(with_code: str):
        at.text_input(key="setup_code").input(with_code)
        at.text_input(key="setup_username").input("root-admin")
        at.text_input(key="setup_password").input(PASSWORD)
        at.text_input(key="setup_password_again").input(PASSWORD)
        return at.button[0].click().run()

    refused = create("guessed-code")
    assert "the setup code is not right" in " ".join(error.value for error in refused.error)
    created = create(code)
    assert "Admin root-admin created: sign in below." in texts(created)
    assert not setup_code_path(app).exists()
    with session_factory() as session:
        creators = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "operator_created")).all()
        assert "setup code (browser)" in creators
    signed_in = sign_in(created, "root-admin", PASSWORD)
    assert not signed_in.exception
    assert "Create the first admin" not in texts(signed_in)
