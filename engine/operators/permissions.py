"""Who acts and what their role lets them do: the one check every operator action makes first.

Apart from the actions themselves (engine/operators/actions.py) so that what only needs to know who is signed in
(the session routes the server mounts before its first page) does not load the whole engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.enums import Role

RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.LEAD: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Actor:
    """The signed-in person on whose behalf an action runs."""

    username: str
    role: Role

    @property
    def label(self) -> str:
        return f"operator:{self.username}"


class PermissionDeniedError(PermissionError):
    pass


def require(actor: Actor, role: Role) -> None:
    if RANK[actor.role] < RANK[role]:
        raise PermissionDeniedError(f"{actor.username} ({actor.role}) may not do this: needs {role} or above")
