"""Alembic environment: kb always hands in an open connection (kb/storage/migrate.py), already
inside the transaction that holds the migration lock, so the migrations run inside it."""

from alembic import context

from kb.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
