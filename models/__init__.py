"""Database tables. SQLModel tables only: API and GraphQL types live with their transports."""

from models.base import metadata
from models.receipt import Receipt, ReceiptStatus
from models.secret import Secret

__all__ = ["Receipt", "ReceiptStatus", "Secret", "metadata"]
