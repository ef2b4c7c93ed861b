"""The PostgreSQL schema of contentforge: ordered migrations, the runner, and runtime queries.

Nothing else in the project writes DDL. ``migrate(url)`` applies what is pending, ``status(url)``
reports applied / pending / changed files, and ``queries`` holds the runtime SQL by name.
"""

from schema.files import Migration, load_migrations
from schema.runner import ChangedMigration, MigrationError, Status, migrate, status

__all__ = ["ChangedMigration", "Migration", "MigrationError", "Status", "load_migrations", "migrate", "status"]
