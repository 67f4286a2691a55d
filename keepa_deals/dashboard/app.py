"""The dashboard's app factory: middleware, error answers and the routers, nothing else.

Pages and API live in one router per area (deals, health, rejections, admin, metrics,
api); templates and static files sit beside them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from keepa_deals import __version__
from keepa_deals.config import Settings
from keepa_deals.dashboard import admin, api, health, metrics, pages
from keepa_deals.dashboard.config import DashboardConfig
from keepa_deals.dashboard.db import DatabaseMissing
from keepa_deals.dashboard.deals import BadParameter
from keepa_deals.dashboard.security import CSRF_COOKIE, is_admin
from keepa_deals.dashboard.state import STATIC, TEMPLATES, Dashboard, DoctorCache
from keepa_deals.infra.checks import Check

log = logging.getLogger(__name__)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)
# Reachable without the password even when every page needs it: a load balancer's probe.
OPEN_PATHS = ("/healthz", "/login", "/static/")


class DropEmptyQueryValues:
    """`?min_profit_cents=&q=` from a submitted filter form means "not set": dropped
    before validation, so an empty field is "any", never a 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            raw = scope["query_string"].decode("latin-1")
            pairs = parse_qsl(raw, keep_blank_values=True)
            if any(v == "" for _, v in pairs):
                kept = [(k, v) for k, v in pairs if v != ""]
                scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}
        await self.app(scope, receive, send)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
        "accept", ""
    )


def create_app(
    config: DashboardConfig,
    *,
    clock: Callable[[], float] | None = None,
    doctor_checks: Sequence[Callable[[Settings], Check]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The snapshots Health and /metrics serve take seconds to compute at a million
        # deals: start them now, so that the first visitor does not wait for them.
        threading.Thread(target=_warm, args=(app.state.dash,), daemon=True).start()
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="keepa-deals dashboard",
        version=__version__,
        description="The accepted deals, the harvest's health and the token budget.",
        docs_url=None,  # Swagger UI loads scripts from a CDN: not under this CSP
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals["simulated"] = config.simulated
    templates.env.globals["version"] = __version__
    app.state.dash = Dashboard(
        config=config,
        templates=templates,
        doctor=DoctorCache(config.settings, config.doctor_every_s, doctor_checks),
        clock=clock,
    )

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if (
            config.login_everywhere
            and not path.startswith(OPEN_PATHS)
            and not is_admin(config, request)
        ):
            if _wants_json(request):
                return JSONResponse(
                    {"detail": "this dashboard needs DASHBOARD_PASSWORD (HTTP Basic or /login)"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="keepa-deals"'},
                )
            return RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)
        started = time.perf_counter()
        response = await call_next(request)
        # Server time (a streamed body is timed to its first chunk): what the
        # benchmark reads, and what a browser's network panel shows.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        new_csrf = getattr(request.state, "new_csrf", None)
        if new_csrf is not None:
            response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict")
        return response

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> Response:
        detail: list[dict[str, Any]] = [
            {"loc": ["query", exc.parameter], "msg": exc.problem, "type": "value_error"}
        ]
        return _invalid(request, templates, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return _invalid(request, templates, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"title": str(exc.status_code), "message": exc.detail},
            exc.status_code,
        )

    @app.exception_handler(DatabaseMissing)
    async def missing(request: Request, exc: DatabaseMissing) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return templates.TemplateResponse(
            request, "error.html", {"title": "No database yet", "message": str(exc)}, 503
        )

    app.add_middleware(DropEmptyQueryValues)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in (api.router, pages.router, health.router, metrics.router, admin.router):
        app.include_router(router)
    return app


def _warm(d: Dashboard) -> None:
    try:
        pages.category_list(d)  # the deals page's category filter: the most visited page
        d.snapshot("health", lambda: health.read_health(d))
        d.snapshot("metrics", metrics.HarvestCollector(d).read_database)
    except Exception:  # a page computes it then, and says what failed
        log.exception("dashboard: computing the first snapshots failed")


def _invalid(
    request: Request, templates: Jinja2Templates, detail: list[dict[str, Any]]
) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=422)
    problems = [f"{d['loc'][-1]}: {d['msg']}" for d in detail]
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": "Invalid request", "message": "; ".join(problems)},
        422,
    )
