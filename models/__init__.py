"""The database tables (SQLModel): secrets, receipts, tokens, storage usage, notifications.

API and GraphQL types live with their doors.
"""

from models.base import metadata
from models.creator_token import CreatorToken
from models.notification import Notification, StoredNotificationState
from models.receipt import Receipt, StoredReceiptStatus
from models.secret import Secret
from models.storage_usage import StorageUsage

__all__ = [
    "CreatorToken",
    "Notification",
    "Receipt",
    "Secret",
    "StorageUsage",
    "StoredNotificationState",
    "StoredReceiptStatus",
    "metadata",
]
