"""The dashboard's own settings, read from the same `.env` and environment as the
service's (keepa_deals.config.Settings holds the rest: the database, Redis, the query)."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from keepa_deals.config import DEFAULT_DEAL_QUERY, Settings
from keepa_deals.errors import ConfigError
from keepa_deals.settings.dashboard import DashboardSettings

DEFAULT_HOST = "127.0.0.1"
KEEPA_HOST = "api.keepa.com"
# The declared default (keepa_deals/settings/dashboard.py), for a caller without Settings.
DEFAULT_PORT: int = DashboardSettings.dashboard_port
DOCTOR_EVERY_S = 30.0  # /healthz, /health and the banner reuse one doctor run this long


@dataclass(frozen=True)
class DashboardConfig:
    settings: Settings
    password: str | None = field(default=None, repr=False)
    session_s: int = 8 * 3600
    # Signs session and CSRF cookies. Random per process: a restart logs everyone out,
    # which is the safe direction.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    # Set when bound to another address than loopback: every page then needs the password.
    login_everywhere: bool = False
    doctor_every_s: float = DOCTOR_EVERY_S

    @property
    def simulated(self) -> bool:
        """No key, or another server than Keepa's (the demo of `keepa-deals run` points
        KEEPA_API_URL at the built-in simulator, with a made-up key): not real deals."""
        host = urlsplit(self.settings.keepa_api_url).hostname or ""
        return not self.settings.keepa_api_key or host != KEEPA_HOST

    @property
    def query_editable(self) -> bool:
        """The packaged default query lives inside the installed package: never edited."""
        return self.settings.deal_query_path.resolve() != DEFAULT_DEAL_QUERY.resolve()

    @classmethod
    def from_settings(cls, settings: Settings) -> DashboardConfig:
        return cls(
            settings=settings,
            password=settings.dashboard_password,
            session_s=settings.dashboard_session_s,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, config: DashboardConfig) -> str:
    """The start-up line about who can reach the dashboard; raises ConfigError for a
    non-loopback bind without a password (the deals and the health would be public)."""
    if is_loopback(host):
        return f"only this machine can reach the dashboard ({host}); pages are open to it"
    if config.password is None:
        raise ConfigError(
            "--host",
            host,
            "binds an address other machines can reach: set DASHBOARD_PASSWORD first "
            "(every page then asks for it)",
        )
    return f"listening on {host}: every page asks for DASHBOARD_PASSWORD"
