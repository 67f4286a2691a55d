"""Sessions, CSRF tokens and the password check.

- A session is a cookie `<expiry_s>.<hmac>` signed with the process's random secret:
  nothing to store, expires on its own, void after a restart.
- CSRF: a signed random token in a SameSite=Strict cookie, repeated in every form as a
  hidden field; a POST whose field does not match its cookie, or whose signature fails,
  is refused (double submit, signed so a cookie planted by a sibling site is useless).
- Passwords are compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from fastapi import Request

from keepa_deals.dashboard.config import DashboardConfig

SESSION_COOKIE = "dash_session"
CSRF_COOKIE = "dash_csrf"
CSRF_FIELD = "csrf"


def _sign(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def password_ok(config: DashboardConfig, given: str) -> bool:
    if config.password is None:
        return False
    return hmac.compare_digest(given.encode(), config.password.encode())


def new_session(config: DashboardConfig, now_s: float | None = None) -> str:
    expires_s = int((time.time() if now_s is None else now_s) + config.session_s)
    return f"{expires_s}.{_sign(config.secret, f'session:{expires_s}')}"


def session_valid(config: DashboardConfig, cookie: str | None, now_s: float | None = None) -> bool:
    if not cookie or config.password is None:
        return False
    expires, _, signature = cookie.partition(".")
    if not expires.isdigit():
        return False
    if not hmac.compare_digest(signature, _sign(config.secret, f"session:{expires}")):
        return False
    return int(expires) > (time.time() if now_s is None else now_s)


def basic_auth_ok(config: DashboardConfig, header: str | None) -> bool:
    """HTTP Basic with the dashboard password (any user name): for Prometheus and curl
    when every page asks for the password."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except ValueError:
        return False
    return password_ok(config, decoded.partition(":")[2])


def is_admin(config: DashboardConfig, request: Request) -> bool:
    return session_valid(config, request.cookies.get(SESSION_COOKIE)) or basic_auth_ok(
        config, request.headers.get("authorization")
    )


def new_csrf(config: DashboardConfig) -> str:
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_sign(config.secret, f'csrf:{nonce}')}"


def csrf_token(config: DashboardConfig, request: Request) -> str:
    """The browser's token: its cookie's when that is valid, else a new one (the page
    that renders the form sets the cookie)."""
    current = request.cookies.get(CSRF_COOKIE)
    if current and csrf_valid(config, current):
        return current
    token: str | None = getattr(request.state, "new_csrf", None)
    if token is None:
        token = new_csrf(config)
        request.state.new_csrf = token
    return token


def csrf_valid(config: DashboardConfig, token: str) -> bool:
    nonce, _, signature = token.partition(".")
    return bool(nonce) and hmac.compare_digest(signature, _sign(config.secret, f"csrf:{nonce}"))


def csrf_ok(config: DashboardConfig, request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie, submitted) and csrf_valid(config, submitted)
