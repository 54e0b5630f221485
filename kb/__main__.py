"""`python -m kb add|list|remove|reindex|search`: manage the knowledge base from a console.

`reindex` rebuilds the documents and repairs both indexes; deriving resolved tickets' chunks again is the
engine's (`python -m engine reindex-knowledge` does both).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.settings import Settings, get_settings
from kb import indexer
from kb.embed import go_offline
from kb.search import search


def _files(paths: Sequence[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(child for child in path.rglob("*") if child.is_file() and not child.name.startswith("."))
        else:
            yield path


def _add(factory: sessionmaker[Session], settings: Settings, args: argparse.Namespace) -> int:
    files = list(_files(args.paths))
    failures = 0
    held: list[int] = []
    with tqdm(files, unit="file", desc="Indexing", disable=args.quiet) as bar:
        for path in bar:
            bar.set_postfix_str(path.name[-40:])
            if not path.is_file():
                tqdm.write(f"{path}: not found")
                failures += 1
                continue
            document = indexer.add_document(
                factory, settings, path.name, path.read_bytes(), uploaded_by=args.by, team=args.team
            )
            line = f"#{document.id} {path.name}: {document.status}, {document.chunk_count} chunks"
            if document.filename != path.name:
                line += f" (stored as {document.filename!r}: file names keep no control characters, at most 500)"
            if document.quarantined_count:
                line += f" ({document.quarantined_count} quarantined: approve them on the Knowledge Base page)"
            tqdm.write(line + (f" — {document.error}" if document.error else ""))
            failures += document.status != indexer.INDEXED
            if document.quarantined_count:
                held.append(document.id)
    if held:
        with factory() as session:
            count, outside = indexer.outside_link_domains(session, settings, held)
        if message := indexer.link_quarantine_message(count, outside):
            print(message)
    return 1 if failures and failures == len(files) else 0


def _list(session: Session) -> int:
    documents = indexer.list_documents(session)
    if not documents:
        print("The knowledge base is empty. Add files with: python -m kb add PATH...")
        return 0
    print(f"{'ID':>5}  {'STATUS':<16} {'CHUNKS':>6} {'HELD':>5}  {'TEAM':<12} FILE")
    for document in documents:
        print(
            f"{document.id:>5}  {document.status:<16} {document.chunk_count:>6} {document.quarantined_count:>5}  "
            f"{(document.team or '-'):<12} "
            f"{document.filename}" + (f"  ({document.error})" if document.error else "")
        )
    return 0


def _reindex(factory: sessionmaker[Session], settings: Settings) -> int:
    with tqdm(desc="Reindexing", unit="step") as bar:

        def progress(message: str) -> None:
            bar.update(1)
            bar.set_postfix_str(message[-60:])

        counts = indexer.reindex_all(factory, settings, progress)
    print(", ".join(f"{name}: {value}" for name, value in counts.items()))
    return 0


def _search(session: Session, settings: Settings, args: argparse.Namespace) -> int:
    for rank, evidence in enumerate(search(session, settings, args.query, k=args.k), 1):
        print(
            f"{rank}. [{evidence.source_kind}] {evidence.title} — {evidence.location or 'whole'} "
            f"(fused {evidence.fused_score:.4f}; vector #{evidence.vector_rank} bm25 #{evidence.bm25_rank})"
        )
        print("   " + evidence.text[:300].replace("\n", " "))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb", description="Manage the No-Touch Support knowledge base.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add files or folders")
    add.add_argument("paths", nargs="+")
    add.add_argument("--team", default=None, help="only this team's retrieval sees them (default: everyone)")
    add.add_argument("--by", default="cli", help="who uploaded them")
    add.add_argument("--quiet", action="store_true", help="no progress bar")
    commands.add_parser("list", help="list documents and their status")
    remove = commands.add_parser("remove", help="remove a document by id")
    remove.add_argument("id", type=int)
    commands.add_parser(
        "reindex", help="re-extract every document; rebuild vectors after a model change (tickets: python -m engine)"
    )
    find = commands.add_parser("search", help="try a query")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=5)
    args = parser.parse_args(argv)

    go_offline()
    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    if args.command == "add":
        return _add(factory, settings, args)
    if args.command == "remove":
        if indexer.remove_document(factory, settings, args.id):
            print(f"Removed document {args.id}.")
            return 0
        print(f"No document {args.id}.", file=sys.stderr)
        return 1
    if args.command == "reindex":
        return _reindex(factory, settings)
    with factory() as session:
        return _list(session) if args.command == "list" else _search(session, settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
