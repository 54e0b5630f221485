"""Real mail servers for the mail tests: Debian's Postfix and Dovecot, started on 127.0.0.1 from a configuration
written into a temporary folder (nothing is installed or changed on the machine; `make system-packages` installs
them). Dovecot serves IMAPS with a private CA and takes Postfix's deliveries over LMTP; Postfix takes submission
with STARTTLS and login (through Dovecot's auth), answers `450 4.2.1` at RCPT for one address (a
check_recipient_access map), and accepts unknown local users so that LMTP refuses them and Postfix sends a real
RFC 3464 bounce. Only loopback ports are opened. Deferred mail is retried within seconds (a production Postfix
waits minutes), so a test or bench that stops Dovecot sees its mail arrive soon after Dovecot is back.

`running_mail_servers()` starts and stops them for a test fixture (`mail_servers`, session-wide) and for
bench/mail.py alike.

Without the binaries the tests that need them are skipped, saying why; under CI=true they fail instead, as with
PostgreSQL.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import smtplib
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.emulators.tls import make_certificate
from tests.mail_sink import free_port
from tests.waiting import wait_until

DESK = "desk@desk.test"
CUSTOMER_DOMAIN = "customer.test"
PASSWORD = "mailbox-secret-753"
USERS = (DESK, f"pat@{CUSTOMER_DOMAIN}", f"rita@{CUSTOMER_DOMAIN}", f"busy@{CUSTOMER_DOMAIN}")
"""Mailboxes on the server; `busy` exists but Postfix refuses it for now (450 4.2.1); other names are unknown."""
TEMPORARILY_REFUSED = f"busy@{CUSTOMER_DOMAIN}"
BINARIES = ("/usr/sbin/postfix", "/usr/sbin/dovecot")
START_DEADLINE = 120.0
"""Seconds to wait for each daemon to answer: generous, a busy 2-core machine starts Postfix slowly."""


@dataclass
class MailServers:
    """Where the running servers listen, and how a test reads a mailbox (users are full addresses)."""

    folder: Path
    ca: Path
    imaps_port: int
    submission_port: int
    smtp_port: int
    started: list[str] = field(default_factory=list)

    def imap(self, user: str) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", self.imaps_port, ssl_context=ssl.create_default_context(cafile=str(self.ca)), timeout=60
        )
        client.login(user, PASSWORD)
        return client

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in `user`'s folder, oldest first, read without changing flags."""
        client = self.imap(user)
        try:
            client.select(folder, readonly=True)
            _, found = client.uid("SEARCH", "ALL")
            raw = []
            for uid in (found[0] or b"").split():
                _, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw.extend(part[1] for part in data if isinstance(part, tuple))
            return raw
        finally:
            client.logout()

    def wait_for_messages(self, user: str, count: int, *, timeout: float = 120.0) -> list[bytes]:
        """Wait until `user`'s INBOX holds at least `count` messages (Postfix delivers in the background)."""
        wait_until(lambda: len(self.messages(user)) >= count, timeout=timeout, interval=0.5, what=f"{count} in {user}")
        return self.messages(user)

    def deliver(self, raw: bytes, sender: str, recipient: str) -> None:
        """Hand a message to Postfix on port 25 (loopback is in mynetworks), as another mail server would."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=60) as client:
            client.sendmail(sender, [recipient], raw)

    def recreate_folder(self, user: str, folder: str, messages: list[bytes]) -> None:
        """Delete `folder` (if there) and create it anew holding `messages`: Dovecot gives it a new UIDVALIDITY,
        as when a folder is rebuilt or restored."""
        client = self.imap(user)
        try:
            client.delete(folder)
            status, answer = client.create(folder)
            assert status == "OK", answer
            for raw in messages:
                status, answer = client.append(folder, "", None, raw)
                assert status == "OK", answer
        finally:
            client.logout()

    def append(self, user: str, raw: bytes, *, arrived: datetime, seen: bool = False) -> None:
        """Put `raw` into `user`'s INBOX as if it had arrived at `arrived` (its INTERNALDATE), read or unread."""
        client = self.imap(user)
        try:
            flags = "(\\Seen)" if seen else ""
            status, answer = client.append("INBOX", flags, imaplib.Time2Internaldate(arrived), raw)
            assert status == "OK", answer
        finally:
            client.logout()

    def empty(self, user: str) -> None:
        """Delete everything in `user`'s INBOX, so each test starts from an empty mailbox."""
        client = self.imap(user)
        try:
            client.select("INBOX")
            client.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
            client.expunge()
        finally:
            client.logout()

    def queue_empty(self) -> bool:
        """Whether Postfix has handed on everything it accepted (nothing deferred or still in flight)."""
        done = subprocess.run(
            ["/usr/sbin/postqueue", "-c", str(self.folder / "postfix"), "-j"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return not done.stdout.strip()

    def desk_values(self) -> dict[str, object]:
        """The desk's settings as the README's "Connect a mailbox" has them: IMAPS and submission with STARTTLS and
        login, the private CA in CONNECTOR_CA_BUNDLE, every message since 2000 inside the start window."""
        return {
            "SUPPORT_FROM_EMAIL": DESK,
            "IMAP_HOST": "127.0.0.1",
            "IMAP_PORT": self.imaps_port,
            "IMAP_SECURITY": "ssl",
            "IMAP_USERNAME": DESK,
            "IMAP_PASSWORD": SecretStr(PASSWORD),
            "IMAP_START_AT": "2000-01-01 00:00:00",
            "OUTBOX_TRANSPORT": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": self.submission_port,
            "SMTP_SECURITY": "starttls",
            "SMTP_USERNAME": DESK,
            "SMTP_PASSWORD": SecretStr(PASSWORD),
            "CONNECTOR_CA_BUNDLE": str(self.ca),
        }

    def start_dovecot(self) -> None:
        """Start Dovecot (again, after `stop_dovecot`) and wait until IMAPS answers."""
        _run(["/usr/sbin/dovecot", "-c", str(self.folder / "dovecot" / "dovecot.conf")], self.folder)
        self.started.append("dovecot")
        wait_until(lambda: _listening(self.imaps_port), timeout=START_DEADLINE, what="IMAPS listening")

    def stop_dovecot(self) -> None:
        """Stop Dovecot and wait until IMAPS is closed: an outage of the mailbox server."""
        _run(["/usr/sbin/dovecot", "-c", str(self.folder / "dovecot" / "dovecot.conf"), "stop"], self.folder)
        self.started.remove("dovecot")
        wait_until(lambda: not _listening(self.imaps_port), timeout=START_DEADLINE, what="IMAPS closed")

    def log(self) -> str:
        texts = []
        for name in ("postfix/maillog", "dovecot/dovecot.log"):
            path = self.folder / name
            texts.append(f"--- {name}\n" + (path.read_text(errors="replace")[-6000:] if path.exists() else "(none)"))
        return "\n".join(texts)


def unavailable_reason() -> str | None:
    """Why real mail servers cannot run here, or None when they can."""
    missing = [path for path in BINARIES if not os.access(path, os.X_OK)]
    if missing:
        return (
            f"Postfix/Dovecot not installed ({', '.join(missing)} missing): "
            "`make system-packages` installs postfix, dovecot-imapd and dovecot-lmtpd"
        )
    if os.geteuid() != 0:
        return "Postfix and Dovecot start their daemons as root; run the mail-server tests as root (as CI does)"
    return None


def require_mail_servers() -> None:
    """Skip the test when the servers cannot run here, saying why; under CI=true that is a failure instead."""
    if (reason := unavailable_reason()) is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs real mail servers: {reason}")
        pytest.skip(reason)


def _dovecot_conf(folder: Path, cert: Path, key: Path, ports: dict[str, int], owner: pwd.struct_passwd) -> str:
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
shutdown_clients = yes
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
first_valid_uid = {owner.pw_uid}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {folder}/users
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {ports["lmtp"]}
  }}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {ports["auth"]}
  }}
}}
"""


def _postfix_main(folder: Path, cert: Path, key: Path, ports: dict[str, int]) -> str:
    return f"""
compatibility_level = 3.6
queue_directory = {folder}/spool
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mail.desk.test
mydomain = desk.test
myorigin = desk.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
virtual_mailbox_domains = desk.test, {CUSTOMER_DOMAIN}
virtual_transport = lmtp:inet:127.0.0.1:{ports["lmtp"]}
smtpd_reject_unlisted_recipient = no
recipient_delimiter = +
message_size_limit = 52428800
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{ports["auth"]}
smtpd_recipient_restrictions = check_recipient_access texthash:{folder}/recipient_access,
    permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
delay_warning_time = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 10s
"""


MASTER_CF = """
{smtp}     inet  n  -  n  -  -  smtpd
{submission} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
pickup    unix  n  -  n  60  1  pickup
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
tlsmgr    unix  -  -  n  1000? 1 tlsmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
flush     unix  n  -  n  1000? 0 flush
proxymap  unix  -  -  n  -   -  proxymap
proxywrite unix -  -  n  -   1  proxymap
smtp      unix  -  -  n  -   -  smtp
relay     unix  -  -  n  -   -  smtp
showq     unix  n  -  n  -   -  showq
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
lmtp      unix  -  -  n  -   -  lmtp
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _run(command: list[str], folder: Path) -> None:
    """Run a daemon's start or stop command. Its output goes to a file, not a pipe: a daemon keeps the descriptors
    it was started with, and a pipe would never reach its end."""
    with (folder / "commands.log").open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); see {folder / 'commands.log'}")


@contextmanager
def running_mail_servers() -> Iterator[MailServers]:
    """Start Postfix and Dovecot from a fresh configuration, and stop them and remove everything on leaving (for the
    test fixture and bench/mail.py alike); the caller checks `unavailable_reason` first."""
    folder = Path(tempfile.mkdtemp(prefix="nts-mail-"))
    folder.chmod(0o755)
    owner = pwd.getpwnam("nobody")
    ca, cert, key = make_certificate(folder / "tls")
    (folder / "tls").chmod(0o755)
    ports = {name: free_port() for name in ("imaps", "lmtp", "auth", "smtp", "submission")}
    dovecot, postfix = folder / "dovecot", folder / "postfix"
    for path in (dovecot, postfix, postfix / "spool", postfix / "data", folder / "mail"):
        path.mkdir(mode=0o755)
    os.chown(folder / "mail", owner.pw_uid, owner.pw_gid)
    os.chown(postfix / "data", pwd.getpwnam("postfix").pw_uid, -1)
    (dovecot / "users").write_text(
        "".join(f"{user}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::{folder}/mail/{user}::\n" for user in USERS)
    )
    (dovecot / "users").chmod(0o644)
    (dovecot / "dovecot.conf").write_text(_dovecot_conf(dovecot, cert, key, ports, owner))
    (postfix / "main.cf").write_text(_postfix_main(postfix, cert, key, ports))
    (postfix / "master.cf").write_text(
        MASTER_CF.format(smtp=f"127.0.0.1:{ports['smtp']}", submission=f"127.0.0.1:{ports['submission']}")
    )
    (postfix / "recipient_access").write_text(f"{TEMPORARILY_REFUSED} 450 4.2.1 Mailbox temporarily unavailable\n")
    servers = MailServers(folder, ca, ports["imaps"], ports["submission"], ports["smtp"])
    try:
        servers.start_dovecot()
        _run(["/usr/sbin/postfix", "-c", str(postfix), "start"], folder)
        servers.started.append("postfix")
        for name in ("lmtp", "auth", "smtp", "submission"):
            wait_until(lambda port=ports[name]: _listening(port), timeout=START_DEADLINE, what=f"{name} listening")
    except Exception as error:
        said = f"{error}\n{servers.log()}\n{(folder / 'commands.log').read_text()}"
        _stop(servers)
        raise RuntimeError(said) from error
    try:
        yield servers
    finally:
        _stop(servers)


def _stop(servers: MailServers) -> None:
    """Stop whichever daemons run and remove their folder."""
    if "postfix" in servers.started:
        try:
            _run(["/usr/sbin/postfix", "-c", str(servers.folder / "postfix"), "stop"], servers.folder)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"stopping postfix: {error}")
    if "dovecot" in servers.started:
        try:
            servers.stop_dovecot()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"stopping dovecot: {error}")
    shutil.rmtree(servers.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    require_mail_servers()
    with running_mail_servers() as servers:
        yield servers
