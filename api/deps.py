"""What HTTP gets from the application: its database, settings and hasher; one place to override.

The routes that call the service (REST's, the GraphQL context, `CreatorDep`) take all three
as one `AppPartsDep`: FastAPI's work per request grows with each dependency it solves, and
three dependencies where one does cost a create→reveal cycle about 3% of its instructions.
Routes that need one part alone take `DatabaseDep` or `SettingsDep`. All of them read
`app.state`, so a test that swaps a part there swaps it for every route.

The doors and the shared HTTP handling take the `Database` type from here, never from
`api.storage`: only the domain reaches into storage (`[tool.importlinter]`). The settings
are those given to `api.app.create_app`; the hasher is built from them by its lifespan.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.domain.hashing import PassphraseHasher
from api.settings import Settings
from api.storage.database import Database

__all__ = [
    "AppParts",
    "AppPartsDep",
    "Database",
    "DatabaseDep",
    "SettingsDep",
    "get_app_parts",
    "get_app_settings",
    "get_database",
]


@dataclass(frozen=True, slots=True)
class AppParts:
    """The application's database, settings and passphrase hasher, as this request finds them."""

    db: Database
    settings: Settings
    hasher: PassphraseHasher


async def get_app_parts(request: Request) -> AppParts:
    """Return the database (opened by the lifespan), the settings and the hasher (built by it)."""
    state = request.app.state
    return AppParts(db=state.database, settings=state.settings, hasher=state.hasher)


async def get_database(request: Request) -> Database:
    """Return the application's database (opened by the lifespan)."""
    database: Database = request.app.state.database
    return database


async def get_app_settings(request: Request) -> Settings:
    """Return the settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


AppPartsDep = Annotated[AppParts, Depends(get_app_parts)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
