"""Database tables. SQLModel tables only: API and GraphQL types live with their transports."""

from models.base import metadata
from models.secret import Secret

__all__ = ["Secret", "metadata"]
