"""The closed vocabularies of the desk: ticket states, action kinds and states, outbox states, roles."""

from enum import StrEnum


class TicketStatus(StrEnum):
    NEW = "New"
    ANALYZING = "Analyzing"
    AWAITING_APPROVAL = "AwaitingApproval"
    AWAITING_CUSTOMER = "AwaitingCustomer"
    IN_PROGRESS = "InProgress"
    """A person took the ticket over and owns it; automation leaves it alone."""
    ESCALATED = "Escalated"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


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
