"""Keeping the API key out of every log line, exception and diagnostic output.

Keepa takes the key in the query string, so any URL that is printed leaks it:
urllib3 logs request lines at DEBUG, and requests' exceptions quote the URL.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

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


def mask_url_password(url: str) -> str:
    """`redis://:secret@host` -> `redis://:***@host`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback text) with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters use a cached exc_text when there is one: fill it, cleaned, but
            # only when it needs cleaning, so custom formatters keep their own layout.
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()
# A logger's filters only see records logged on that very logger, not on its children,
# so every logger that may print a URL is named. urllib3.util.retry logs the URL of each
# retry; connectionpool logs request lines at DEBUG.
_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "keepa_deals",
    "keepa_deals.keepa.client",
)


def install_log_redaction() -> None:
    """Attach the filter to the loggers above and to every root handler (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
