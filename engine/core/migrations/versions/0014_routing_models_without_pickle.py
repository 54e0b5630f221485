"""routing_models: drop models stored with pickle; they are stored as skops data from now on

A pickled model runs code when it is loaded, and whoever can write the database could plant one. The routing
model is now written with skops (engine/analysers/routing.py `TeamModel.to_bytes`), whose loader builds only
scikit-learn and numpy objects. Rows from earlier releases cannot be read that way, so they go: the next
`train_routing` run learns the model again from the resolved tickets (the desk routes by its category map and
first line until then).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM routing_models")


def downgrade() -> None:
    """Nothing to restore: a downgraded engine retrains as it would on an empty table."""
