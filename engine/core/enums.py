"""The closed vocabularies of the desk: ticket states, action kinds and states, outbox states, roles.

Ticket states are defined with the connectors (connectors/base.py), which write them back to the vendors and import
no engine code; the engine names them from here like every other vocabulary.
"""

from enum import StrEnum

from connectors.base import TicketStatus

__all__ = ["ActionKind", "ActionState", "MessageKind", "OutboxState", "OutcomeState", "Role", "TicketStatus"]


class ActionKind(StrEnum):
    PROPOSE_RESOLUTION = "propose_resolution"
    REQUEST_INFO = "request_info"
    ESCALATE = "escalate"
    MANUAL_REPLY = "manual_reply"


class ActionState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    EXECUTED = "executed"
    REJECTED = "rejected"
    VOIDED = "voided"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    UNCERTAIN = "uncertain"
    BOUNCED = "bounced"
    """Handed over, then returned: a bounce (a provider's event or an RFC 3464 report in the mailbox) names it."""


class MessageKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"
    RESOLUTION = "resolution"
    REQUEST_INFO = "request_info"
    MANUAL_REPLY = "manual_reply"


class OutcomeState(StrEnum):
    """What became of a resolution (engine/outcomes/outcomes.py): pending until the customer answers or time decides."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    ASSUMED = "assumed"
    REOPENED = "reopened"
    DURABLE = "durable"


class Role(StrEnum):
    VIEWER = "viewer"
    AGENT = "agent"
    LEAD = "lead"
    ADMIN = "admin"
