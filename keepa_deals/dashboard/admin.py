"""The admin pages: log in and out, and the deal query editor (`/query`).

The editor validates with the service's own validator (`validate_selection`, the code
every run loads the query with), so what it accepts the next run accepts too; an
invalid document leaves the file untouched, a valid one replaces it atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keepa_deals.dashboard.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    csrf_ok,
    csrf_token,
    is_admin,
    new_session,
    password_ok,
)
from keepa_deals.dashboard.state import Dashboard, dash
from keepa_deals.keepa.deal_query import InvalidDealQuery, load_deal_query, validate_selection

router = APIRouter(include_in_schema=False)
MAX_QUERY_BYTES = 64 * 1024


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect to another host."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    next: Annotated[str, Query(max_length=200)] = "/",
) -> Response:
    return d.templates.TemplateResponse(
        request,
        "login.html",
        {
            "next": _safe_next(next),
            "csrf": csrf_token(d.config, request),
            "csrf_field": CSRF_FIELD,
            "has_password": d.config.password is not None,
            "error": None,
        },
    )


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form(max_length=200)] = "/",
) -> Response:
    if not csrf_ok(d.config, request, csrf):
        raise HTTPException(403, "the form expired or came from another site: reload it")
    if not password_ok(d.config, password):
        return d.templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "csrf": csrf_token(d.config, request),
                "csrf_field": CSRF_FIELD,
                "has_password": d.config.password is not None,
                "error": "wrong password",
            },
            401,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        new_session(d.config),
        max_age=d.config.session_s,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
def logout(
    request: Request, d: Annotated[Dashboard, Depends(dash)], csrf: Annotated[str, Form()] = ""
) -> Response:
    if not csrf_ok(d.config, request, csrf):
        raise HTTPException(403, "the form expired or came from another site: reload it")
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _query_page(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    *,
    text: str | None,
    error: str | None,
    saved: bool,
    status_code: int = 200,
) -> Response:
    path = d.settings.deal_query_path
    if text is None:
        try:
            text = json.dumps(load_deal_query(path), indent=2)
        except InvalidDealQuery as exc:
            text, error = (path.read_text(encoding="utf-8") if path.exists() else ""), str(exc)
    return d.templates.TemplateResponse(
        request,
        "query.html",
        {
            "path": str(path),
            "text": text,
            "error": error,
            "saved": saved,
            "editable": d.config.query_editable,
            "csrf": csrf_token(d.config, request),
            "csrf_field": CSRF_FIELD,
        },
        status_code,
    )


def _needs_login(request: Request, d: Dashboard) -> Response | None:
    if d.config.password is None:
        return d.templates.TemplateResponse(
            request,
            "error.html",
            {
                "title": "Admin pages are off",
                "message": "The deal query editor needs a password: set DASHBOARD_PASSWORD "
                "(12 characters or more) in .env and restart the dashboard.",
            },
            403,
        )
    if not is_admin(d.config, request):
        return RedirectResponse("/login?next=/query", status_code=303)
    return None


@router.get("/query", response_class=HTMLResponse)
def query_view(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    saved: Annotated[bool, Query()] = False,
) -> Response:
    refused = _needs_login(request, d)
    if refused is not None:
        return refused
    return _query_page(request, d, text=None, error=None, saved=saved)


@router.post("/query", response_class=HTMLResponse)
def query_save(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    query: Annotated[str, Form(max_length=MAX_QUERY_BYTES)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    refused = _needs_login(request, d)
    if refused is not None:
        return refused
    if not csrf_ok(d.config, request, csrf):
        raise HTTPException(403, "the form expired or came from another site: reload it")
    if not d.config.query_editable:
        return _query_page(
            request,
            d,
            text=query,
            error="the packaged default query is not edited in place: set DEAL_QUERY_PATH to "
            "a file of your own (copy this one) and restart",
            saved=False,
            status_code=409,
        )
    path = d.settings.deal_query_path
    try:
        data = json.loads(query)
    except json.JSONDecodeError as exc:
        error = f"{path}: <file>: is not valid JSON: {exc.msg} at line {exc.lineno}"
        return _query_page(request, d, text=query, error=error, saved=False, status_code=422)
    try:
        selection = validate_selection(data, str(path))
    except InvalidDealQuery as exc:
        return _query_page(request, d, text=query, error=str(exc), saved=False, status_code=422)
    write_atomically(path, json.dumps(selection, indent=2) + "\n")
    return RedirectResponse("/query?saved=true", status_code=303)


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one: a temporary file in
    the same folder, flushed to disk, renamed over the old one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
