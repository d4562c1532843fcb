"""The dependencies both doors share: one place to override them in tests.

FastAPI resolves `DatabaseDep` for the REST routes and for the GraphQL context alike.
"""

from typing import Annotated

from fastapi import Depends, Request

from api.storage.database import Database


async def get_database(request: Request) -> Database:
    """Return the application's database (opened by the lifespan)."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
