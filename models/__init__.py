"""Database tables. SQLModel tables only: API and GraphQL types live with their transports."""

from models.base import metadata
from models.creator_token import CreatorToken
from models.receipt import Receipt, ReceiptStatus
from models.secret import Secret
from models.storage_usage import StorageUsage

__all__ = ["CreatorToken", "Receipt", "ReceiptStatus", "Secret", "StorageUsage", "metadata"]
