"""A small IMAP4rev1 server on 127.0.0.1 for the IMAP connector's tests (imaplib is the client).

Implements the part of RFC 3501 the connector uses: greeting with CAPABILITY, CAPABILITY, LOGIN
(`NO [AUTHENTICATIONFAILED]` on bad credentials), SELECT/EXAMINE with EXISTS, UIDVALIDITY and UIDNEXT,
UID SEARCH over `n:*` ranges (where `*` is the highest UID, so `n:*` always matches that message), optionally
with `SINCE dd-Mon-yyyy`, UID FETCH of `BODY.PEEK[]` as literals or of `INTERNALDATE`, UID STORE `+FLAGS`,
NOOP and LOGOUT; with `tls=(certificate, key)`
it speaks implicit TLS from the first byte, as on port 993 (RFC 8314).
"""

from __future__ import annotations

import re
import shlex
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)
    internal_date: datetime = field(default_factory=lambda: datetime.now(UTC))


class ImapEmulator:
    def __init__(
        self,
        username: str = "desk@example.test",
        password: str = "imap-secret-654",  # noqa: S107
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.tls = tls
        self.uidvalidity = 1700000000
        self.messages: list[StoredMessage] = []
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.auth_down = False
        """Answer LOGIN as Dovecot does while its authentication process is down (stopping, restarting):
        `NO [UNAVAILABLE]` (RFC 5530), a temporary failure, not wrong credentials."""
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def append(self, raw: bytes, *, arrived: datetime | None = None) -> int:
        """Store a message; `arrived` is its INTERNALDATE (default: now)."""
        with self.lock:
            uid = (self.messages[-1].uid if self.messages else 0) + 1
            self.messages.append(StoredMessage(uid, raw, internal_date=arrived or datetime.now(UTC)))
            return uid

    def renumber(self) -> None:
        """What a server does when the folder is recreated or rebuilt: new UIDVALIDITY, new UIDs (RFC 3501
        2.3.1.1: UIDs from before are no longer valid, and a client must resynchronise)."""
        with self.lock:
            self.uidvalidity += 1
            for n, message in enumerate(self.messages, start=101):
                message.uid = n

    def start(self) -> ImapEmulator:
        emulator = self

        class Handler(socketserver.StreamRequestHandler):
            def send(self, line: str | bytes) -> None:
                self.wfile.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

            def handle(self) -> None:
                self.send("* OK [CAPABILITY IMAP4rev1] emulator ready")
                selected = False
                while line := self.rfile.readline():
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    emulator.commands.append(text)
                    tag, _, rest = text.partition(" ")
                    command, _, args = rest.partition(" ")
                    command = command.upper()
                    if command == "UID":
                        sub, _, args = args.partition(" ")
                        command = f"UID {sub.upper()}"
                    if command == "CAPABILITY":
                        self.send("* CAPABILITY IMAP4rev1")
                    elif command == "LOGIN":
                        user, password = shlex.split(args)
                        if emulator.auth_down:
                            self.send(f"{tag} NO [UNAVAILABLE] Temporary authentication failure.")
                            continue
                        if (user, password) != (emulator.username, emulator.password):
                            self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
                            continue
                    elif command in ("SELECT", "EXAMINE"):
                        with emulator.lock:
                            self.send(f"* {len(emulator.messages)} EXISTS")
                            self.send(f"* OK [UIDVALIDITY {emulator.uidvalidity}] UIDs valid")
                            next_uid = (emulator.messages[-1].uid if emulator.messages else 0) + 1
                            self.send(f"* OK [UIDNEXT {next_uid}] Predicted next UID")
                        selected = True
                        mode = "READ-ONLY" if command == "EXAMINE" else "READ-WRITE"
                        self.send(f"{tag} OK [{mode}] {command} completed")
                        continue
                    elif command.startswith("UID") and not selected:
                        self.send(f"{tag} BAD No mailbox selected")
                        continue
                    elif command == "UID SEARCH":
                        self.send("* SEARCH " + " ".join(str(uid) for uid in self._search(args)))
                    elif command == "UID FETCH":
                        uids, _, items = args.partition(" ")
                        for seq, message in self._matching(uids):
                            if "INTERNALDATE" in items.upper():
                                stamp = message.internal_date.strftime("%d-%b-%Y %H:%M:%S %z")
                                self.send(f'* {seq} FETCH (UID {message.uid} INTERNALDATE "{stamp}")')
                                continue
                            self.send(
                                f"* {seq} FETCH (UID {message.uid} BODY[] {{{len(message.raw)}}}".encode()
                                + b"\r\n"
                                + message.raw
                                + b")\r\n"
                            )
                    elif command == "UID STORE":
                        uids, _, flags = args.partition(" ")
                        names = set(re.findall(r"\\\w+", flags))
                        for seq, message in self._matching(uids):
                            message.flags |= names
                            self.send(f"* {seq} FETCH (UID {message.uid} FLAGS ({' '.join(sorted(message.flags))}))")
                    elif command == "LOGOUT":
                        self.send("* BYE logging out")
                        self.send(f"{tag} OK LOGOUT completed")
                        return
                    elif command != "NOOP":
                        self.send(f"{tag} BAD unknown command")
                        continue
                    self.send(f"{tag} OK {command} completed")

            def _search(self, args: str) -> list[int]:
                match = re.fullmatch(r"UID (\d+):\*(?: SINCE (\d{1,2}-\w{3}-\d{4}))?", args.strip())
                with emulator.lock:
                    uids = [m.uid for m in emulator.messages]
                    dates = {m.uid: m.internal_date.date() for m in emulator.messages}
                if not match or not uids:
                    return []
                start = int(match.group(1))
                found = [uid for uid in uids if uid >= start] or [uids[-1]]
                if match.group(2):
                    since = datetime.strptime(match.group(2), "%d-%b-%Y").date()
                    found = [uid for uid in found if dates[uid] >= since]
                return found

            def _matching(self, spec: str) -> list[tuple[int, StoredMessage]]:
                wanted = {int(uid) for uid in spec.split(",") if uid.isdigit()}
                with emulator.lock:
                    return [(n, m) for n, m in enumerate(emulator.messages, start=1) if m.uid in wanted]

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
