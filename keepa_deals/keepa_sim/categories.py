"""/category (lookup by id) and /search?type=category (by name) over the simulated tree.

Keepa documents both at 1 token a request; that is what they cost here, whatever they
find (docs/simulator.md). `category=0` lists the roots; `parents=1` adds every ancestor
of what was found under `categoryParents`. An id Keepa does not know is left out; a
lookup that finds nothing answers `categories: {}` (the keepa client turns that into
its "no match found" error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keepa_deals.keepa_sim.catalogue import CATEGORY_TREE, Catalogue, category_path
from keepa_deals.keepa_sim.wire import RequestError

COST = 1
MAX_IDS = 10
MAX_SEARCH_RESULTS = 50


class CategoryIndex:
    """The tree's objects, with product counts and rank bounds from the catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._children: dict[int, list[int]] = {cat: [] for cat in CATEGORY_TREE}
        for cat, (_, parent) in CATEGORY_TREE.items():
            if parent:
                self._children[parent].append(cat)
        self._counts: dict[int, int] | None = None

    def _product_counts(self) -> dict[int, int]:
        """Products listed in each category or below it (from the cheap root split)."""
        if self._counts is None:
            counts = dict.fromkeys(CATEGORY_TREE, 0)
            for root in self._catalogue.root_of:
                counts[root] += 1
            self._counts = counts
        return self._counts

    def category(self, cat_id: int, domain: int) -> dict[str, Any]:
        name, parent = CATEGORY_TREE[cat_id]
        count = self._product_counts()[cat_id]
        return {
            "domainId": domain,
            "catId": cat_id,
            "name": name,
            "contextFreeName": name,
            "websiteDisplayGroup": None,
            "children": sorted(self._children[cat_id]),
            "parent": parent,
            "highestRank": 6_000_000 if count else None,
            "lowestRank": 1 if count else None,
            "productCount": count,
            "isBrowseNode": True,
            "avgBuyBox": None,
            "avgBuyBox90": None,
            "avgBuyBox365": None,
            "avgBuyBoxDeviation": None,
            "avgReviewCount": None,
            "avgRating": None,
            "isFBAPercent": None,
            "soldByAmazonPercent": None,
            "hasCouponPercent": None,
            "avgOfferCountNew": None,
            "avgOfferCountUsed": None,
            "sellerCount": None,
            "brandCount": None,
        }

    def lookup(self, params: Mapping[str, str], domain: int) -> dict[str, object]:
        raw = params.get("category", "")
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise RequestError(400, f"category={raw}: ids are integers") from None
        if not ids:
            raise RequestError(400, "the category parameter is required")
        if len(ids) > MAX_IDS:
            raise RequestError(400, f"{len(ids)} categories asked: at most {MAX_IDS}")
        if any(i < 0 for i in ids):
            raise RequestError(400, f"category={raw}: ids are positive (0: the roots)")
        found: list[int] = []
        for cat_id in ids:
            if cat_id == 0:
                found += [c for c, (_, parent) in CATEGORY_TREE.items() if parent == 0]
            elif cat_id in CATEGORY_TREE:
                found.append(cat_id)
        return self._answer(found, domain, params.get("parents") == "1")

    def search(self, params: Mapping[str, str], domain: int) -> dict[str, object]:
        if params.get("type") != "category":
            raise RequestError(400, "only type=category searches are simulated")
        words = params.get("term", "").lower().split()
        if not words:
            raise RequestError(400, "the term parameter is required")
        found = [
            cat
            for cat, (name, _) in CATEGORY_TREE.items()
            if all(word in name.lower() for word in words)
        ][:MAX_SEARCH_RESULTS]
        return self._answer(found, domain, False)

    def _answer(self, found: list[int], domain: int, parents: bool) -> dict[str, object]:
        answer: dict[str, object] = {
            "categories": {str(c): self.category(c, domain) for c in dict.fromkeys(found)}
        }
        if parents:
            above = {a for c in found for a in category_path(c)[:-1]}
            answer["categoryParents"] = {str(a): self.category(a, domain) for a in sorted(above)}
        return answer
