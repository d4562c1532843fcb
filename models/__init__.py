"""Database tables. SQLModel tables only: API and GraphQL types live with their transports."""

from models.secret import Secret
from models.base import metadata

__all__ = ["Secret", "metadata"]
