"""Alembic environment: the engine comes from ``cohortsync.storage.migrate``."""

from alembic import context

from cohortsync.storage.migrate import ours
from cohortsync.storage.tables import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=ours,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
