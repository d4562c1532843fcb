"""The per-request GraphQL context, built from the same session dependency as REST."""

from strawberry.fastapi import BaseContext

from api.db import SessionDep


class Context(BaseContext):
    """Carries the request's database session to the resolvers."""

    def __init__(self, session: SessionDep) -> None:
        super().__init__()
        self.session = session


async def get_context(session: SessionDep) -> Context:
    """Build the context; FastAPI resolves `session` exactly as it does for REST routes."""
    return Context(session)
