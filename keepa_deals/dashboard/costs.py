"""My costs: a user's own costs per item, and profit and ROI recomputed with them.

The harvest stores the components of every figure (buy price, sale price, fees), so a
user's costs change the figures without a Keepa call: the SQL below recomputes them in
the query, which lets filters and sorts apply to the user's profit, not the stored one.
With no costs set the stored columns are used as they are (and their indexes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl, urlencode

COOKIE = "my_costs"
MAX_COST_CENTS = 100_000  # $1000 per item: far above any real prep or shipping cost
MAX_TAX_BPS = 5_000  # 50 %
MAX_MIN_ROI_PERCENT = 10_000


class InvalidCosts(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class MyCosts:
    prep_fee_cents: int = 0
    inbound_shipping_cents: int = 0
    sales_tax_bps: int = 0  # basis points of the buy price: 825 = 8.25 %
    min_profit_cents: int | None = None  # the user's own floors: default filters
    min_roi_percent: float | None = None

    def __post_init__(self) -> None:
        for name in ("prep_fee_cents", "inbound_shipping_cents"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_COST_CENTS:
                raise InvalidCosts(name, f"must be 0..{MAX_COST_CENTS} cents, got {value}")
        if not 0 <= self.sales_tax_bps <= MAX_TAX_BPS:
            raise InvalidCosts("sales_tax_bps", f"must be 0..{MAX_TAX_BPS}")
        if self.min_profit_cents is not None and abs(self.min_profit_cents) > 10 * MAX_COST_CENTS:
            raise InvalidCosts("min_profit_cents", "is out of range")
        if self.min_roi_percent is not None and abs(self.min_roi_percent) > MAX_MIN_ROI_PERCENT:
            raise InvalidCosts("min_roi_percent", "is out of range")

    @property
    def adds_costs(self) -> bool:
        return bool(self.prep_fee_cents or self.inbound_shipping_cents or self.sales_tax_bps)

    def to_cookie(self) -> str:
        return urlencode({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_cookie(cls, raw: str | None) -> MyCosts:
        """The saved costs; a damaged or tampered cookie counts as no costs at all (it
        is the user's own, so nothing is lost but their settings)."""
        if not raw:
            return cls()
        try:
            values = dict(parse_qsl(raw, strict_parsing=True))
            return cls(
                prep_fee_cents=int(values.get("prep_fee_cents", 0)),
                inbound_shipping_cents=int(values.get("inbound_shipping_cents", 0)),
                sales_tax_bps=int(values.get("sales_tax_bps", 0)),
                min_profit_cents=_opt_int(values.get("min_profit_cents")),
                min_roi_percent=_opt_float(values.get("min_roi_percent")),
            )
        except ValueError:
            return cls()

    # --- the figures, in Python (one deal) and in SQL (filters and sorts) ----------

    def tax_cents(self, buy_price_cents: int) -> int:
        return (buy_price_cents * self.sales_tax_bps + 5_000) // 10_000  # to the nearest cent

    def cost_cents(self, buy_price_cents: int) -> int:
        """What one item costs the user: landed buy price, its sales tax, prep, inbound."""
        return (
            buy_price_cents
            + self.tax_cents(buy_price_cents)
            + self.prep_fee_cents
            + self.inbound_shipping_cents
        )

    def profit_cents(self, sell_price_cents: int, fees_cents: int, buy_price_cents: int) -> int:
        return sell_price_cents - fees_cents - self.cost_cents(buy_price_cents)

    def roi_percent(self, profit_cents: int, buy_price_cents: int) -> float:
        """Profit over cost in percent, rounded down to 1/100 as the stored ROI is."""
        return (profit_cents * 10_000 // self.cost_cents(buy_price_cents)) / 100

    def sql(self) -> tuple[str, str, dict[str, int]]:
        """(profit expression, ROI expression, their parameters) over `deals` columns.

        The parameters are integers bound by name, never formatted into the SQL."""
        if not self.adds_costs:
            return "profit_cents", "roi_percent", {}
        cost = (
            "(buy_price_cents + (buy_price_cents * :c_tax_bps + 5000) / 10000"
            " + :c_prep + :c_inbound)"
        )
        profit = f"(sell_price_cents - fees_cents - {cost})"
        # SQLite's integer division truncates toward zero; this floors, like Python's //.
        floor_div = (
            f"(CASE WHEN {profit} >= 0 THEN {profit} * 10000 / {cost}"
            f" ELSE -((-{profit} * 10000 + {cost} - 1) / {cost}) END)"
        )
        roi = f"({floor_div} / 100.0)"
        return (
            profit,
            roi,
            {
                "c_tax_bps": self.sales_tax_bps,
                "c_prep": self.prep_fee_cents,
                "c_inbound": self.inbound_shipping_cents,
            },
        )


def _opt_int(raw: str | None) -> int | None:
    return None if raw in (None, "") else int(raw)


def _opt_float(raw: str | None) -> float | None:
    return None if raw in (None, "") else float(raw)
