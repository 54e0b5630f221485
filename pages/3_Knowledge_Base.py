"""The knowledge base: upload files (a progress bar each), see how each indexed, preview chunks, re-index, delete,
review quarantined chunks, try a question to see the evidence the engine would cite, see the knowledge gaps, and the
answers the desk learned from its people (ui/learned.py)."""

import pandas as pd
import streamlit as st

from engine.core.db import transaction
from engine.core.enums import Role
from engine.operators.actions import add_kb_document, approve_kb_chunk, reindex_kb_document, remove_kb_document
from engine.operators.permissions import PermissionDeniedError
from engine.operators.queries import kb_chunks, kb_documents
from kb.calibration import calibration_summary
from kb.chunk import describe_location
from kb.indexer import quarantined_chunks
from kb.search import search
from ui import glossary
from ui.auth import allowed
from ui.components import article_text, article_title, flash, held_text, page, plain, role_hint, show_flash
from ui.learned import learned_answers_tab
from ui.outcomes import knowledge_gap_list
from ui.tables import show_table

runtime, actor = page("Knowledge base")
CAN_EDIT = allowed(actor, Role.LEAD)
LEAD_ONLY = role_hint(actor, Role.LEAD)
ACCEPTED = ["pdf", "docx", "pptx", "md", "txt", "html", "htm", "csv", "eml", "png", "jpg", "jpeg", "tif", "tiff"]

st.title("Knowledge base")
show_flash()
upload_tab, documents_tab, quarantine_tab, search_tab, gaps_tab, learned_tab = st.tabs(
    ["Upload", "Documents", "Quarantined", "Try a search", "Knowledge gaps", "Learned answers"],
    key="kb_tab",
    on_change="rerun",
)

with upload_tab:
    if not CAN_EDIT:
        st.info(f"Uploading, re-indexing and deleting need the lead role; you are {actor.role.value}.")
    generation = st.session_state.get("kb_upload_generation", 0)
    files = st.file_uploader(
        "Add documents",
        type=ACCEPTED,
        accept_multiple_files=True,
        key=f"kb_files_{generation}",
        max_upload_size=max(1, runtime.settings.KB_MAX_FILE_BYTES // (1024 * 1024)),
        disabled=not CAN_EDIT,
        help="PDF, Word, PowerPoint, Markdown, text, HTML, CSV, e-mail and scanned images (OCR).",
    )
    team = st.text_input("Team (optional)", key="kb_team", disabled=not CAN_EDIT, help="Limits retrieval to this team.")
    if st.button("Add to the knowledge base", type="primary", disabled=not CAN_EDIT or not files, key="kb_upload"):
        results, renamed = [], []
        bars = [(upload, st.progress(0.0, text=f"{upload.name}: waiting")) for upload in files or []]
        for upload, bar in bars:
            bar.progress(0.2, text=f"{upload.name}: extracting and indexing…")
            try:
                document = add_kb_document(
                    runtime.factory, runtime.settings, actor, upload.name, upload.getvalue(), team=team.strip() or None
                )
                status, chunks, error = document.status, document.chunk_count, document.error
                if document.filename != upload.name:
                    given, kept = plain(repr(upload.name)[:80]), plain(repr(document.filename)[:80])
                    renamed.append(f"{given} is stored as {kept}")
            except PermissionDeniedError as refused:
                status, chunks, error = "refused", 0, str(refused)
            results.append({"file": upload.name, "status": status, "chunks": chunks, "error": error or ""})
            bar.progress(1.0, text=f"{upload.name}: {status}" + (f" ({chunks} chunks)" if chunks else f" — {error}"))
        failed = [r for r in results if r["status"] != "indexed"]
        st.session_state["kb_upload_generation"] = generation + 1
        st.session_state["kb_last_upload"] = results
        (st.warning if failed else st.success)(
            f"{len(results) - len(failed)} of {glossary.plural(len(results), 'file')} indexed"
            + (": " + "; ".join(f"{r['file']}: {r['error'] or r['status']}" for r in failed) if failed else ".")
        )
        if renamed:
            st.warning(
                "File names keep no control or invisible characters and at most 500 characters (the extension is "
                "kept): " + "; ".join(renamed)
            )
    elif last := st.session_state.get("kb_last_upload"):
        st.caption("Last upload")
        show_table(pd.DataFrame(last), hide_index=True, width="stretch")

with documents_tab:
    with runtime.factory() as session:
        documents = kb_documents(session)
    if not documents:
        st.info("The knowledge base is empty: upload documents on the Upload tab.")
    else:
        indexed = sum(d.status == "indexed" for d in documents)
        st.caption(f"{len(documents)} documents · {indexed} indexed · {sum(d.chunk_count for d in documents):,} chunks")
        table = pd.DataFrame(
            [
                {
                    "title": article_title(d.title, d.filename),
                    "file": d.filename,
                    "status": d.status,
                    "chunks": d.chunk_count,
                    "quarantined": d.quarantined_count,
                    "team": d.team or "",
                    "size": d.size,
                    "uploaded by": d.uploaded_by or "",
                    "indexed": d.indexed_at,
                    "problem": d.error or "",
                }
                for d in documents
            ]
        )
        picked = show_table(
            table,
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="kb_table",
            column_config={"size": st.column_config.NumberColumn("size (bytes)", format="%d")},
        )
        if picked and picked.selection.rows:
            document = documents[picked.selection.rows[0]]
            st.subheader(plain(article_title(document.title, document.filename)))
            if document.error:
                st.error(f"{document.status}: {document.error}")
            buttons = st.columns([1, 1, 4])
            if buttons[0].button("Re-index", disabled=not CAN_EDIT, help=LEAD_ONLY, key="kb_reindex"):
                again = reindex_kb_document(runtime.factory, runtime.settings, actor, document.id)
                flash(f"{again.filename}: {again.status}, {again.chunk_count} chunks")
                st.rerun()
            if buttons[1].button("Delete", disabled=not CAN_EDIT, help=LEAD_ONLY, key="kb_delete"):
                st.session_state["kb_confirm_delete"] = document.id
            if st.session_state.get("kb_confirm_delete") == document.id:
                st.warning(f"Delete {document.filename} and its {document.chunk_count} chunks from every index?")
                yes, no, _ = st.columns([1, 1, 4])
                if yes.button("Delete for good", type="primary", key="kb_delete_yes"):
                    remove_kb_document(runtime.factory, runtime.settings, actor, document.id)
                    st.session_state.pop("kb_confirm_delete")
                    st.session_state.pop("kb_table", None)
                    flash(f"{document.filename} deleted.")
                    st.rerun()
                if no.button("Keep it", key="kb_delete_no"):
                    st.session_state.pop("kb_confirm_delete")
                    st.rerun()
            with runtime.factory() as session:
                chunks = kb_chunks(session, document.id)
            st.caption(f"First {len(chunks)} of {document.chunk_count} chunks")
            for chunk in chunks:
                where = ", ".join(f"{k} {v}" for k, v in (chunk.location or {}).items() if v not in (None, "", []))
                held = " · quarantined" if chunk.quarantine and not chunk.approved_at else ""
                with st.expander(f"Chunk {chunk.chunk_index + 1}" + (f" · {plain(where)}" if where else "") + held):
                    if chunk.quarantine:
                        st.caption(f"Quarantine: {plain(chunk.quarantine)}")
                    (held_text if chunk.quarantine else article_text)(chunk.text)
        else:
            st.caption("Select a document to preview its chunks, re-index or delete it.")

with quarantine_tab:
    st.caption(
        "Chunks the hygiene scan held back (hidden text, instructions to an assistant or the reader, requests for "
        "secrets, bank details, links outside the allowed domains, spreadsheet formulas). The engine never cites "
        "them until a lead approves them; an approval lasts while the chunk's content is unchanged."
    )
    with runtime.factory() as session:
        held = quarantined_chunks(session)
    if not held:
        st.info("Nothing is quarantined.")
    for item in held:
        chunk = item.chunk
        with st.container(border=True):
            where = describe_location(chunk.location) or "whole document"
            st.markdown(f"**{plain(article_title(item.title))}** · {plain(where)}")
            st.warning(f"Quarantined: {plain(chunk.quarantine or '')}")
            held_text(chunk.text[:600] + ("…" if len(chunk.text) > 600 else ""))
            if CAN_EDIT and st.button("Approve as evidence", key=f"kb_approve_{chunk.id}"):
                try:
                    with transaction(runtime.factory) as session:
                        approve_kb_chunk(session, actor, chunk.id)
                    flash(f"Chunk {chunk.id} of {item.title} approved; the engine may cite it now.")
                except (LookupError, ValueError, PermissionDeniedError) as refused:
                    flash(f"Not approved: {refused}", "error")
                st.rerun()

with search_tab:
    with st.form("kb_search"):
        query = st.text_input("Question", placeholder="How do I reset my VPN token?", key="kb_query")
        k = st.slider("Results", 1, 10, 5, key="kb_k")
        asked = st.form_submit_button("Search")
    if asked and query.strip():
        with runtime.factory() as session:
            hits = search(session, runtime.settings, query, k=k, include_quarantined=True)
        if not hits:
            st.info("No evidence found. Upload documents, or resolved tickets will be indexed as they close.")
        for number, hit in enumerate(hits, 1):
            with st.container(border=True):
                kind = "resolved ticket" if hit.source_kind == "ticket" else "article"
                st.markdown(f"**[{number}] {plain(article_title(hit.title))}** · {kind} · {plain(hit.location)}")
                if CAN_EDIT:
                    with st.expander("Why this ranked here"):
                        st.caption(
                            f"combined {hit.fused_score:.4f} · by meaning #{hit.vector_rank or '—'}"
                            + (f" ({hit.vector_score:.3f})" if hit.vector_score is not None else "")
                            + f" · by keywords #{hit.bm25_rank or '—'}"
                            + (f" ({hit.bm25_score:.2f})" if hit.bm25_score is not None else "")
                        )
                if hit.quarantine:
                    (st.info if hit.approved_by else st.warning)(
                        (f"Approved by {hit.approved_by}; " if hit.approved_by else "Quarantined, never cited: ")
                        + plain(hit.quarantine)
                    )
                (held_text if hit.quarantine else article_text)(hit.text[:1200])

with gaps_tab:
    knowledge_gap_list(runtime)

with learned_tab:
    learned_answers_tab(runtime, actor)

# --- Retrieval calibration (read only): what this knowledge base chose for itself (kb/calibration.py) ---
st.subheader("Retrieval calibration")
with runtime.factory() as session:
    calibration = calibration_summary(session)
if not calibration["calibrated"]:
    st.caption(
        f"Not calibrated yet: search uses {calibration['fusion']}. The index job calibrates once documents are indexed."
    )
else:
    test = calibration["self_test"]
    st.markdown(
        f"**Search uses:** {calibration['fusion']} · chosen {calibration['calibrated_at'][:16]} "
        f"on {calibration['chunks']} chunks"
    )
    st.caption(
        f"Self-test on {test.get('queries', 0)} questions ({test.get('real_questions', 0)} asked by customers and "
        "answered by a person, the rest made from the documents' sentences, asked reworded and in their own words): "
        "it finds the right document "
        f"with a score of {test.get('mrr', '—')} (mean reciprocal rank, 1 = always first; keywords alone "
        f"{test.get('bm25_mrr', '—')}, vectors alone {test.get('vector_mrr', '—')}; a combination is chosen only "
        "when it beats the better one on every kind of question by more than the test's noise); confidence model "
        "fitted on "
        f"{calibration['confidence_samples']} cases; {calibration['changed_since']:.0%} of the chunks "
        "changed since (10 % re-calibrates)."
    )
