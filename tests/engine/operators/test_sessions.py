import stat

from engine.core.settings import Settings
from engine.operators.sessions import issue_token, signing_key_path, token_user


def test_a_token_names_its_operator_until_it_expires(settings: Settings) -> None:
    token = issue_token(settings, "ann", 600, now=1_000)
    assert token_user(settings, token, now=1_500) == ("ann", 1_600)
    assert token_user(settings, token, now=1_600) is None
    assert stat.S_IMODE(signing_key_path(settings).stat().st_mode) == 0o600


def test_forged_garbled_and_missing_tokens_are_refused(settings: Settings) -> None:
    token = issue_token(settings, "ann", 600, now=1_000)
    payload, signature = token.split(".")
    other = issue_token(settings, "ada", 600, now=1_000)
    assert token_user(settings, f"{other.split('.')[0]}.{signature}", now=1_100) is None
    assert token_user(settings, f"{payload}.{'0' * len(signature)}", now=1_100) is None
    for garbled in (None, "", "no-dot", "a.b.c", f"{payload}x.{signature}"):
        assert token_user(settings, garbled, now=1_100) is None


def test_a_non_ascii_token_is_refused_without_an_error(settings: Settings) -> None:
    token = issue_token(settings, "ann", 600, now=1_000)
    payload, signature = token.split(".")
    for garbled in (f"{payload}.{'é' * len(signature)}", f"{payload}.😀", "é.é"):
        assert token_user(settings, garbled, now=1_100) is None
