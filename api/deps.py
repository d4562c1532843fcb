"""The database as HTTP gets it: one place to override it in tests.

FastAPI resolves `DatabaseDep` for the REST routes, the GraphQL context and `CreatorDep`
alike. The doors and the plumbing take the `Database` type from here, never from
`api.storage`: only the domain reaches into storage (`[tool.importlinter]`).
"""

from typing import Annotated

from fastapi import Depends, Request

from api.storage.database import Database

__all__ = ["Database", "DatabaseDep", "get_database"]


async def get_database(request: Request) -> Database:
    """Return the application's database (opened by the lifespan)."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
