"""Keep secret keys and passphrases out of log lines.

Paths carry secret keys and GET query strings carry passphrases, so access logs show the
route with the key replaced and no query string at all.
"""

import logging
import re

_SECRET_PATH = re.compile(r"^(/secrets/)[^/?#]*")


def redact_path(path: str) -> str:
    """Return `path` without its query string and with any secret key replaced."""
    bare = path.split("?", 1)[0]
    return _SECRET_PATH.sub(r"\1{secret_key}", bare)


class AccessLogRedactor(logging.Filter):
    """Rewrites uvicorn access-log records so the path is redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the path argument of an access-log record in place; never drop it."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Attach the redactor to uvicorn's access logger, once."""
    access_logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in access_logger.filters):
        access_logger.addFilter(AccessLogRedactor())
