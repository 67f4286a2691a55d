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


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# redis-py passes every query parameter to the connection (`?password=`,
# `?ssl_password=`), so any parameter named like a secret is one.
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:pass|secret|token|cred)[^=&#]*=)[^&#]*")


def mask_url_password(url: str) -> str:
    """The URL with every credential redis-py would take from it hidden.

    `redis://user:secret@host/0?password=secret` -> `redis://user:***@host/0?password=***`.
    A lone user-info (`redis://secret@host`) is hidden whole: redis-py sends it as the
    user name, but it is a password written without its colon. Read as text, not with
    urlsplit: a password holding an unescaped `/` or `@` is misread by the parser, and
    an unparseable URL must be masked too. The user-info ends at the last `@`.
    """
    scheme = _URL_SCHEME.match(url)
    start = scheme.end() if scheme else 0
    rest = url[start:]
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:***" if colon else "***") + rest[at:]
    return url[:start] + _SECRET_PARAM.sub(r"\g<1>***", rest)


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
