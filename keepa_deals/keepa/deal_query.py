"""The /deal selection: loaded, checked and normalised before any token is spent.

Keepa silently falls back to its defaults when an integer arrives as a string
(failure mode "numbers sent as text": all-time data instead of the last week), so every number is
checked to be a JSON number here, where a mistake costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keepa_deals.errors import KeepaDealsError

DATE_RANGES = (0, 1, 2, 3)
SORT_TYPES = (1, 2, 3, 4, -1, -2, -3, -4)
MAX_PRICE_TYPE = 35
_INT_FIELDS = ("domainId", "page", "dateRange", "sortType", "minRating")
_RANGE_FIELDS = (
    "currentRange",
    "deltaRange",
    "deltaPercentRange",
    "deltaLastRange",
    "salesRankRange",
)
_LIST_FIELDS = ("includeCategories", "excludeCategories", "warehouseConditions")
_BOOL_FIELDS = (
    "isRangeEnabled",
    "isFilterEnabled",
    "isLowest",
    "isLowest90",
    "isLowestOffer",
    "isOutOfStock",
    "isBackInStock",
    "hasReviews",
    "singleVariation",
    "filterErotic",
    "mustHaveAmazonOffer",
    "mustNotHaveAmazonOffer",
    "isPrimeExclusive",
)
KNOWN_FIELDS = frozenset((*_INT_FIELDS, *_RANGE_FIELDS, *_LIST_FIELDS, *_BOOL_FIELDS, "priceTypes"))


class InvalidDealQuery(KeepaDealsError, ValueError):
    """The selection would be rejected or silently misread by Keepa."""

    def __init__(self, field: str, problem: str, source: str = "selection") -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: {field}: {problem}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_selection(selection: Mapping[str, Any], source: str = "selection") -> dict[str, Any]:
    """Return a normalised copy or raise InvalidDealQuery naming the field."""
    if not isinstance(selection, Mapping):
        raise InvalidDealQuery("<root>", "must be a JSON object", source)
    unknown = sorted(set(selection) - KNOWN_FIELDS)
    if unknown:
        raise InvalidDealQuery(unknown[0], "is not a /deal selection field Keepa knows", source)
    for name in _INT_FIELDS:
        if name in selection and not _is_int(selection[name]):
            raise InvalidDealQuery(
                name,
                f"must be a JSON number, got {selection[name]!r} (Keepa would silently "
                "use its default)",
                source,
            )
    if "domainId" not in selection:
        raise InvalidDealQuery("domainId", "is required", source)
    price_types = selection.get("priceTypes")
    if (
        not isinstance(price_types, list)
        or len(price_types) != 1
        or not _is_int(price_types[0])
        or not 0 <= price_types[0] <= MAX_PRICE_TYPE
    ):
        raise InvalidDealQuery(
            "priceTypes",
            f"must be a list holding exactly one price type (0..{MAX_PRICE_TYPE})",
            source,
        )
    if selection.get("dateRange", 0) not in DATE_RANGES:
        raise InvalidDealQuery("dateRange", f"must be one of {DATE_RANGES}", source)
    if selection.get("sortType", 1) not in SORT_TYPES:
        raise InvalidDealQuery("sortType", f"must be one of {SORT_TYPES}", source)
    if selection.get("page", 0) < 0:
        raise InvalidDealQuery("page", "must be >= 0", source)
    for name in _RANGE_FIELDS:
        if name in selection:
            value = selection[name]
            if not isinstance(value, list) or len(value) != 2 or not all(_is_int(v) for v in value):
                raise InvalidDealQuery(name, "must be [min, max] as JSON numbers", source)
    if "deltaPercentRange" in selection and selection["deltaPercentRange"][0] < 10:
        raise InvalidDealQuery("deltaPercentRange", "minimum must be at least 10", source)
    for name in _LIST_FIELDS:
        if name in selection and (
            not isinstance(selection[name], list) or not all(_is_int(v) for v in selection[name])
        ):
            raise InvalidDealQuery(name, "must be a list of JSON numbers", source)
    for name in _BOOL_FIELDS:
        if name in selection and not isinstance(selection[name], bool):
            raise InvalidDealQuery(name, "must be true or false", source)
    return dict(selection)


def load_deal_query(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidDealQuery("<file>", f"cannot be read: {exc.strerror}", str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDealQuery(
            "<file>", f"is not valid JSON: {exc.msg} at line {exc.lineno}", str(path)
        ) from None
    return validate_selection(data, str(path))
