"""The database tables (SQLModel): secrets, receipts, creator tokens, storage usage.

API and GraphQL types live with their doors.
"""

from models.base import metadata
from models.creator_token import CreatorToken
from models.receipt import Receipt, StoredReceiptStatus
from models.secret import Secret
from models.storage_usage import StorageUsage

__all__ = [
    "CreatorToken",
    "Receipt",
    "Secret",
    "StorageUsage",
    "StoredReceiptStatus",
    "metadata",
]
