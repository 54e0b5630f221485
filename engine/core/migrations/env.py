"""Alembic environment: runs on the connection handed over by engine.core.db.upgrade_database."""

from alembic import context

from engine.core.fulltext import mapped_by_models
from engine.core.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
    include_object=mapped_by_models,
)
with context.begin_transaction():
    context.run_migrations()
