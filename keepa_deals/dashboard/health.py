"""Health for people (`/health`) and for probes (`/healthz`): what `keepa-deals status`
and `doctor` know, with a red banner naming the cause when doctor would fail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from keepa_deals.dashboard.db import DatabaseMissing, reading
from keepa_deals.dashboard.deals import iso
from keepa_deals.dashboard.reports import hourly
from keepa_deals.dashboard.state import Dashboard, dash
from keepa_deals.infra.durations import duration
from keepa_deals.service.doctor import summary
from keepa_deals.service.status import db_status, gather

router = APIRouter()


@router.get("/healthz", responses={503: {"description": "doctor fails: the failing checks"}})
async def healthz(d: Annotated[Dashboard, Depends(dash)]) -> Response:
    """200 when `keepa-deals doctor` passes, 503 with the failing checks otherwise."""
    checks, age_s = await run_in_threadpool(d.doctor.get)
    report = summary(checks)
    report["age_s"] = round(age_s, 1)
    report["failing"] = [c.__dict__ for c in checks if c.outcome == "fail"]
    return JSONResponse(report, status_code=200 if report["ok"] else 503)


def _in_words(seconds: float | None, none: str) -> str:
    return duration(seconds, none)


@router.get("/health", response_class=HTMLResponse, include_in_schema=False)
def health_view(request: Request, d: Annotated[Dashboard, Depends(dash)]) -> Response:
    (status, series), status_age_s = d.snapshot("health", lambda: read_health(d))
    checks, age_s = d.doctor.get()
    failing = [c for c in checks if c.outcome == "fail"]
    return d.templates.TemplateResponse(
        request,
        "health.html",
        {
            "status": status,
            "status_age_s": status_age_s,
            "checks": checks,
            "failing": failing,
            "doctor_age_s": age_s,
            "series": series,
            "words": _in_words,
            "iso": iso,
        },
    )


def read_health(d: Dashboard) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What `keepa-deals status` reads, and the last day's series: a scan of the deals
    table, so computed in the background (Dashboard.snapshot), not per request."""
    status = gather(d.settings)
    if d.clock is not None:
        # A dashboard on an injected clock (a simulation, the tests' manual clock)
        # judges the database's ages on that clock, as its deal pages do.
        status["database"] = db_status(d.settings.deals_db_path, d.now_s())
    try:
        with reading(d.settings) as conn:
            series: dict[str, Any] | None = hourly(conn, d.now_s())
    except DatabaseMissing:
        series = None
    return status, series
