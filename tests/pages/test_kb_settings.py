"""The knowledge-base page (upload, status, chunks, search, re-index, delete) and the settings page."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from engine.analysers.routing import TeamModel, store_model, ticket_text
from engine.core.desk_policy import current_policy
from engine.core.enums import Role
from engine.core.models import AuditEntry, KbDocument, Operator
from engine.core.settings import Settings
from engine.operators.actions import add_kb_document
from engine.operators.permissions import Actor
from kb.calibration import Calibration, Fusion, save_calibration
from tests.factories import own_transactions, routing_history
from tests.kb.files import make_pdf
from tests.pages.conftest import PASSWORD, open_page, texts

KB = "pages/3_Knowledge_Base.py"
SETTINGS = "pages/5_Settings.py"
ROUTER = b"# Router\nTo reset the router, hold the recessed button for ten seconds until the lights blink amber.\n"


def upload(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    at.file_uploader[0].set_value(list(files))
    return at.run().button(key="kb_upload").click().run()


def test_a_lead_uploads_previews_searches_reindexes_and_deletes(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = upload(
        open_page(KB, "lee"),
        ("router.md", ROUTER, "text/markdown"),
        ("printer.pdf", make_pdf(["Printer setup guide", "Toner E42 means reseat the cartridge"]), "application/pdf"),
        ("empty.txt", b"", "text/plain"),
    )
    assert not at.exception
    assert "2 of 3 files indexed: empty.txt" in texts(at)
    assert len(at.get("progress")) == 3
    with session_factory() as session:
        documents = {d.filename: d for d in session.scalars(select(KbDocument))}
        assert documents["printer.pdf"].status == "indexed" and documents["printer.pdf"].uploaded_by == "lee"
        assert (
            session.scalars(select(AuditEntry.action).where(AuditEntry.action == "kb_upload")).all()
            == ["kb_upload"] * 3
        )
    table = at.dataframe[0].value
    assert list(table["file"]) == ["empty.txt", "printer.pdf", "router.md"]
    at.session_state["kb_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert "Toner E42 means reseat the cartridge" in texts(at)
    [documents_table] = [frame.value for frame in at.dataframe if "title" in frame.value.columns]
    assert list(documents_table["title"]) == ["Empty", "Printer setup guide", "Router"]
    at = at.button(key="kb_reindex").click().run()
    assert "printer.pdf: indexed, 2 chunks" in texts(at)

    at.text_input(key="kb_query").input("toner error E42")
    at = next(b for b in at.button if b.label == "Search").click().run()
    assert "**[1] Printer setup guide** · article · page 2" in texts(at)
    assert "by keywords #1" in texts(at)
    assert "Why this ranked here" in [expander.label for expander in at.expander]

    at.session_state["kb_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at = at.run().button(key="kb_delete").click().run()
    at = at.button(key="kb_delete_yes").click().run()
    assert "printer.pdf deleted." in texts(at)
    with session_factory() as session:
        assert "printer.pdf" not in set(session.scalars(select(KbDocument.filename)))


def test_an_agent_may_search_but_not_change_the_knowledge_base(app: Settings) -> None:
    at = open_page(KB, "ann")
    assert "Uploading, re-indexing and deleting need the lead role; you are agent." in texts(at)
    assert at.file_uploader[0].disabled
    assert at.button(key="kb_upload").disabled


def test_a_lead_changes_the_policy_and_it_is_versioned(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page(SETTINGS, "lee")
    assert not at.exception
    at.slider(key="policy_threshold").set_value(60.0)
    at.number_input(key="policy_follow_ups").set_value(2)
    at = next(b for b in at.button if b.label == "Save policy").click().run()
    assert "Policy saved as policy version 1." in texts(at)
    with session_factory() as session:
        policy = current_policy(session, app)
        assert (policy.escalation_threshold, policy.follow_up_limit) == (60.0, 2)
        assert session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "change_policy")) == "lee"


def test_templates_preview_and_refuse_a_broken_placeholder(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(SETTINGS, "lee")
    at.selectbox(key="template_kind").set_value("resolution").run()
    at.text_area(key="template_text_resolution").input("Hi $name, see $reference.\n$signature").run()
    assert "Hi Dana, see TCKT-1042." in "\n".join(text.value for text in at.text)
    at = at.button(key="template_save").click().run()
    with session_factory() as session:
        assert current_policy(session, app).templates["resolution"].startswith("Hi $name")
    at.text_area(key="template_text_resolution").input("Hi $nme").run()
    assert "unknown or malformed placeholder" in texts(at)
    assert at.button(key="template_save").disabled


def test_an_agent_reads_settings_but_cannot_save(app: Settings) -> None:
    at = open_page(SETTINGS, "ann")
    assert "Changing the policy needs the lead role; you are agent." in texts(at)
    assert next(b for b in at.button if b.label == "Save policy").disabled
    assert "Managing operators needs the admin role; you are agent." in texts(at)
    assert at.button(key="connector_test").disabled if any(b.key == "connector_test" for b in at.button) else True


def test_an_admin_adds_an_operator_and_changes_a_role(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page(SETTINGS, "ada")
    at.text_input(key="operator_new_username").input("bo")
    at.selectbox(key="operator_new_role").set_value("agent")
    at.text_input(key="operator_new_password").input(PASSWORD)
    at = next(b for b in at.button if b.label == "Add operator").click().run()
    assert "bo added as agent." in texts(at)
    at.selectbox(key="operator_pick").set_value("vic").run()
    at.selectbox(key="operator_role_vic").set_value("lead")
    at = next(b for b in at.button if b.label == "Save changes").click().run()
    with session_factory() as session:
        roles = dict(session.execute(select(Operator.username, Operator.role)).all())
        assert (roles["bo"], roles["vic"]) == (Role.AGENT, Role.LEAD)
    at.selectbox(key="operator_pick").set_value("ada").run()
    at.selectbox(key="operator_role_ada").set_value("viewer")
    at = next(b for b in at.button if b.label == "Save changes").click().run()
    assert "ada is the last active admin" in texts(at)


def test_an_agent_searches_articles_rendered_without_ranking_internals(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        add_kb_document(own_transactions(session), app, Actor("lee", Role.LEAD), "router-reset.md", ROUTER)
    at = open_page(KB, "ann")
    at.text_input(key="kb_query").input("reset the router")
    at = next(b for b in at.button if b.label == "Search").click().run()
    shown = texts(at)
    assert "**[1] Router** · article" in shown
    assert any("hold the recessed button" in markdown.value for markdown in at.markdown)
    assert "by keywords" not in shown and "Why this ranked here" not in [e.label for e in at.expander]


def test_a_viewer_sees_the_policy_read_only_in_human_words(app: Settings) -> None:
    at = open_page(SETTINGS, "vic")
    assert not at.exception
    assert at.slider(key="policy_threshold").disabled and at.slider(key="policy_confidence").disabled
    assert at.number_input(key="policy_follow_ups").disabled
    assert at.number_input(key="policy_weight_code_change_complexity").label == "Code change needed"
    assert "§" not in texts(at) and "AUTOPILOT_ENABLED" not in texts(at)
    assert not any("variable" in frame.value.columns for frame in at.dataframe)


def test_autopilot_categories_are_matched_in_lower_case_and_unknown_ones_are_flagged(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(SETTINGS, "lee")
    at.session_state["policy_autopilot"] = {
        "edited_rows": {},
        "added_rows": [{"source": "*", "category": "Billing ", "autopilot": True}],
        "deleted_rows": [],
    }
    at = next(b for b in at.button if b.label == "Save policy").click().run()
    assert "No ticket has had the category billing yet" in texts(at)
    with session_factory() as session:
        assert current_policy(session, app).autopilot.get("*:billing") is True


def test_kb_page_shows_the_retrieval_calibration(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page(KB, "lee")
    assert not at.exception
    assert any(
        "Not calibrated yet: search uses RRF k=10, vectors 25% / BM25 75%" in caption.value for caption in at.caption
    )
    with session_factory() as session:
        save_calibration(
            session,
            Calibration(
                Fusion("minmax", 0.7),
                {"queries": 120, "real_questions": 4, "mrr": 0.91, "bm25_mrr": 0.8, "vector_mrr": 0.9},
            ),
        )
        session.commit()
    at = open_page(KB, "lee")
    assert "**Search uses:** min-max scores, vectors 70% / BM25 30%" in " ".join(m.value for m in at.markdown)
    caption = next(caption.value for caption in at.caption if "Self-test" in caption.value)
    assert "120 questions (4 asked by customers" in caption and "a score of 0.91" in caption
    assert "vectors alone 0.9;" in caption and "_" not in caption and "None" not in caption


def test_a_lead_edits_the_contact_points_and_the_audit_log_records_it(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(SETTINGS, "lee")
    at.text_area(key="policy_contact_points").input("0044 20 7946 0999\nOut-Of-Hours@Desk.example\n")
    at = next(b for b in at.button if b.label == "Save policy").click().run()
    assert "Policy saved as policy version 1." in texts(at)
    at.text_area(key="policy_contact_points").input("020 7946 0999")
    at = next(b for b in at.button if b.label == "Save policy").click().run()
    assert any("not a phone number with its country code: '020 7946 0999'" in error.value for error in at.error)
    with session_factory() as session:
        assert current_policy(session, app).contact_points == ["+442079460999", "out-of-hours@desk.example"]
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "change_policy"))
        assert entry is not None and entry.actor == "lee" and "contact_points" in entry.details["changed"]


def test_an_upload_with_a_name_no_column_can_hold_is_stored_under_a_clean_name_and_says_so(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    long_name = "Router " + "guide " * 120 + ".md"
    # Streamlit itself refuses a NUL in an uploaded file's name; other control characters arrive
    at = upload(open_page(KB, "lee"), (long_name, ROUTER, "text/markdown"), ("rou\x07ter.md", ROUTER, "text/markdown"))
    assert not at.exception
    assert "2 of 2 files indexed." in texts(at)
    assert any(r"'rou\\x07ter\.md' is stored as 'router\.md'" in warning.value for warning in at.warning)
    assert any("at most 500 characters (the extension is kept)" in warning.value for warning in at.warning)
    with session_factory() as session:
        names = set(session.scalars(select(KbDocument.filename)))
    assert "router.md" in names and any(len(name) == 500 and name.endswith(".md") for name in names)


def test_settings_show_the_routing_thresholds_beside_what_they_kept_on_the_newest_tickets(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    assert "Not learned yet: it needs 300 resolved tickets." in texts(open_page(SETTINGS, "lee"))
    rows = routing_history(40)
    model = TeamModel(first_line="Service Desk", target_precision=0.85)
    model.fit([ticket_text(subject, description) for subject, description, _ in rows], [row[2] for row in rows])
    store_model(session_factory, model, seconds=1.0)
    shown = texts(open_page(SETTINGS, "lee"))
    assert "from 160 resolved tickets, 4 teams. Target precision 85%; for the specialist signal 95%." in shown
    assert "checked on the newest 32 of those tickets (held back while the threshold was chosen)" in shown
    assert f"right {model.validation['routed_precision']:.0%} of the time (90% interval " in shown
    assert "On this desk since it was learned: no ticket it sent to a team has finished yet." in shown
