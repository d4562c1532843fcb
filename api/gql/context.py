"""The per-request GraphQL context, built from the same dependencies as REST's."""

from strawberry.fastapi import BaseContext

from api.deps import AppPartsDep, Database
from api.domain.creators import Creator
from api.domain.hashing import PassphraseHasher
from api.settings import Settings


class Context(BaseContext):
    """Carries the application's database, settings and hasher to the resolvers, and who creates.

    `creator` is set before a creating document runs, in token mode only, by the rate-limit
    extension (`api.gql.rate_limits`) from `api.access.authentication`.
    """

    def __init__(self, db: Database, settings: Settings, hasher: PassphraseHasher) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.hasher = hasher
        self.creator: Creator | None = None


async def get_context(parts: AppPartsDep) -> Context:
    """Build the context; FastAPI resolves its parts exactly as it does for REST routes."""
    return Context(parts.db, parts.settings, parts.hasher)
