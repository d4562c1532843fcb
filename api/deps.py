"""What HTTP gets from the application: its database, settings and hasher; one place to override.

FastAPI resolves `DatabaseDep` for the REST routes, the GraphQL context and `CreatorDep`
alike. The doors and the shared HTTP handling take the `Database` type from here, never from
`api.storage`: only the domain reaches into storage (`[tool.importlinter]`). The settings
are those given to `api.app.create_app`; the hasher is built from them by its lifespan.
"""

from typing import Annotated

from fastapi import Depends, Request

from api.domain.hashing import PassphraseHasher
from api.settings import Settings
from api.storage.database import Database

__all__ = [
    "Database",
    "DatabaseDep",
    "HasherDep",
    "SettingsDep",
    "get_app_hasher",
    "get_app_settings",
    "get_database",
]


async def get_database(request: Request) -> Database:
    """Return the application's database (opened by the lifespan)."""
    database: Database = request.app.state.database
    return database


async def get_app_settings(request: Request) -> Settings:
    """Return the settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_app_hasher(request: Request) -> PassphraseHasher:
    """Return the application's passphrase hasher (built by the lifespan)."""
    hasher: PassphraseHasher = request.app.state.hasher
    return hasher


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
HasherDep = Annotated[PassphraseHasher, Depends(get_app_hasher)]
