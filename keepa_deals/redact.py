"""Keeping the API key out of every log line, exception and diagnostic output.

Keepa takes the key in the query string, so any URL that is printed leaks it:
urllib3 logs request lines at DEBUG, and requests' exceptions quote the URL.
"""

from __future__ import annotations

import logging
import re

_KEY_PARAM = re.compile(r"(?i)([?&]key=)[^&\s'\"#]*")
_HIDDEN = "***"
_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret so `redact` hides it wherever it appears."""
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    text = _KEY_PARAM.sub(rf"\g<1>{_HIDDEN}", text)
    for secret in _secrets:
        text = text.replace(secret, _HIDDEN)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with secrets removed (attach to handlers/loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the filter to urllib3's loggers and to every root handler (idempotent)."""
    for name in ("urllib3", "urllib3.connectionpool", "requests", "keepa_deals"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
