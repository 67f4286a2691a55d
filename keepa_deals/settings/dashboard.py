"""How the dashboard serves people: its port, its password and how long a login lasts."""

from __future__ import annotations

from dataclasses import dataclass

from keepa_deals.settings.parsers import integer, password, setting
from keepa_deals.settings.runtime import RuntimeSettings


@dataclass(frozen=True, repr=False)
class DashboardSettings(RuntimeSettings):
    dashboard_port: int = setting(
        "DASHBOARD_PORT",
        8080,
        integer(1, 65_535),
        "Port of `keepa-deals dashboard` (and of the dashboard `make run` starts).",
    )
    dashboard_password: str | None = setting(
        "DASHBOARD_PASSWORD",
        None,
        password(12),
        "Admin pages (the deal query editor) ask for it; without it the dashboard binds "
        "127.0.0.1 only. At least 12 characters; every page asks for it off loopback.",
    )
    dashboard_session_s: int = setting(
        "DASHBOARD_SESSION_S",
        8 * 3600,
        integer(60, 30 * 86_400),
        "A dashboard login lasts this long.",
    )
