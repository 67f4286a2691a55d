"""The simulated Amazon catalogue: who the products are, derived from (seed, index) alone.

Only what is cheap is computed up front (ASINs, change cadence); a product's full
profile is derived on first use and kept. Prices here are long-run levels; what a
product costs at a given minute is the timeline's business (`timeline.py`).

The mix is made for a used-books deal finder to reject most of what it sees: some
books never have a used offer, some never drop in rank, some are textbooks priced far
above a reseller's ceiling, a few have no sales rank at all.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from keepa_deals.keepa_sim.hashing import MASK64, fmix, lerp, mix, pick, unit
from keepa_deals.keepa_sim.words import (
    ADJECTIVES,
    BOOK_TITLES,
    BRANDS,
    FIRST_NAMES,
    LAST_NAMES,
    NOUNS,
    SUBJECTS,
    THINGS,
)

BOOKS = 283155
# (root id, name, share of the catalogue, sub-categories as (id, name))
ROOT_CATEGORIES: tuple[tuple[int, str, float, tuple[tuple[int, str], ...]], ...] = (
    (
        BOOKS,
        "Books",
        0.72,
        (
            (1, "Arts & Photography"),
            (2, "Biographies & Memoirs"),
            (3, "Business & Money"),
            (4, "Children's Books"),
            (5, "Computers & Technology"),
            (6, "Cookbooks, Food & Wine"),
            (9, "History"),
            (17, "Literature & Fiction"),
            (18, "Mystery, Thriller & Suspense"),
            (25, "Science Fiction & Fantasy"),
            (75, "Science & Math"),
            (4736, "Self-Help"),
            (465600, "Textbooks"),
        ),
    ),
    (172282, "Electronics", 0.08, ((541966, "Computers"), (502394, "Camera & Photo"))),
    (1055398, "Home & Kitchen", 0.08, ((284507, "Kitchen & Dining"), (1063306, "Furniture"))),
    (165793011, "Toys & Games", 0.05, ((166057011, "Building Toys"), (166220011, "Games"))),
    (3375251, "Sports & Outdoors", 0.04, ((3407731, "Outdoor Recreation"), (3375301, "Fitness"))),
    (2625373011, "Movies & TV", 0.03, ((2649512011, "Movies"), (2649513011, "TV"))),
)
ROOT_NAMES = {root: name for root, name, _, _ in ROOT_CATEGORIES}
CATEGORY_NAMES = {cat: name for _, _, _, subs in ROOT_CATEGORIES for cat, name in subs}
# Categories below the sub-categories: in the tree (/category, /search) but holding no
# simulated product of their own. (id, name, parent)
LEAF_CATEGORIES: tuple[tuple[int, str, int], ...] = (
    (1063308, "Kitchen & Dining Room Chairs", 1063306),
    (3733781, "Home Office Desk Chairs", 1063306),
    (3733821, "Living Room Chairs", 1063306),
    (289913, "Cookware", 284507),
    (3003, "Cookbooks by Cuisine", 6),
    (4311, "Mysteries", 18),
)
# id -> (name, parent id; 0 for a root)
CATEGORY_TREE: dict[int, tuple[str, int]] = {
    **{root: (name, 0) for root, name, _, _ in ROOT_CATEGORIES},
    **{cat: (name, root) for root, _, _, subs in ROOT_CATEGORIES for cat, name in subs},
    **{cat: (name, parent) for cat, name, parent in LEAF_CATEGORIES},
}


def category_name(cat_id: int) -> str:
    return CATEGORY_TREE[cat_id][0]


def category_path(cat_id: int) -> list[int]:
    """Root first, down to `cat_id`."""
    path = [cat_id]
    while CATEGORY_TREE[path[0]][1]:
        path.insert(0, CATEGORY_TREE[path[0]][1])
    return path


# How often a product's offers change: cycle length in minutes and the share of products.
CADENCES_MIN = (720, 1440, 2880, 5760)
_CADENCE_CUMULATIVE = (0.2, 0.55, 0.85, 1.0)

_BINDINGS = {
    BOOKS: ("Paperback", "Hardcover", "Mass Market Paperback"),
    172282: ("Electronics",),
    1055398: ("Kitchen",),
    165793011: ("Toy",),
    3375251: ("Sports",),
    2625373011: ("DVD", "Blu-ray"),
}
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_IMG = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-"
_GOLDEN = 0x9E3779B97F4A7C15
_TRACKING_FROM_KM = 525_600  # 2012-01-01
_TRACKING_SPAN_MIN = 5_260_320  # ten years


@dataclass(frozen=True, slots=True)
class ProductProfile:
    index: int
    asin: str
    key: int
    root_cat: int
    categories: tuple[int, ...]
    title: str
    brand: str
    author: str | None
    binding: str
    parent_asin: str | None
    is_adult: bool
    image: str
    code: str  # EAN-13 for books, UPC-A otherwise
    new_base_cents: int
    used_base_cents: int  # 0: never has a used offer
    amazon_sells: bool
    rank_base: int  # -1: no sales rank
    rank_drops_30: int
    rating: int  # 0..50
    review_count: int
    monthly_sold: int
    used_count_base: int
    new_count_base: int
    tracking_since_km: int
    refresh_min: int
    refresh_phase_min: int
    event_threshold: int  # an event happens in a cycle when 16 hash bits are below this

    @property
    def is_book(self) -> bool:
        return self.root_cat == BOOKS


def _isbn10(body: int) -> str:
    digits = f"{body:09d}"
    check = sum((10 - i) * int(d) for i, d in enumerate(digits)) % 11
    return digits + ("X" if (11 - check) % 11 == 10 else str((11 - check) % 11))


def _ean13(twelve: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(twelve))
    return twelve + str((10 - total % 10) % 10)


def _log_uniform(low: float, high: float, fraction: float) -> float:
    return math.exp(lerp(math.log(low), math.log(high), fraction))


class Catalogue:
    """`size` products; product `i` depends on (seed, i) only."""

    def __init__(self, seed: int, size: int) -> None:
        if size < 1:
            raise ValueError("a catalogue needs at least one product")
        self.seed = seed
        self.size = size
        self.keys: list[int] = []
        self.asins: list[str] = []
        self.cadence_index: list[int] = []
        self.root_of: list[int] = []
        self.index_by_asin: dict[str, int] = {}
        base = mix(seed)
        for i in range(size):
            key = fmix((base + i * _GOLDEN) & MASK64)
            asin = self._asin(i, key)
            self.keys.append(key)
            self.asins.append(asin)
            self.index_by_asin[asin] = i
            self.root_of.append(root_category(key))
            share = unit(key, 48)
            cadence = 0
            while share >= _CADENCE_CUMULATIVE[cadence]:
                cadence += 1
            self.cadence_index.append(cadence)
        self._profiles: list[ProductProfile | None] = [None] * size
        self._by_code: dict[str, int] | None = None

    def _asin(self, index: int, key: int) -> str:
        attempt = 0
        while True:
            h = fmix((key ^ 0xA5A5) + attempt)
            if root_category(key) == BOOKS:
                asin = _isbn10(h % 1_000_000_000)
            else:
                asin = "B0" + "".join(_B36[(h >> (5 * n)) % 36] for n in range(8))
            if asin not in self.index_by_asin:
                return asin
            attempt += 1

    def index_of_code(self, code: str) -> int | None:
        if self._by_code is None:
            self._by_code = {self.profile(i).code: i for i in range(self.size)}
        return self._by_code.get(code)

    def profile(self, index: int) -> ProductProfile:
        cached = self._profiles[index]
        if cached is None:
            cached = self._profiles[index] = self._derive(index)
        return cached

    def _derive(self, i: int) -> ProductProfile:
        key = self.keys[i]
        h1, h2, h3, h4 = (fmix(key ^ salt) for salt in (0x11, 0x22, 0x33, 0x44))
        root = self.root_of[i]
        subs = next(row[3] for row in ROOT_CATEGORIES if row[0] == root)
        book = root == BOOKS
        sub = subs[(h1 & 0xFFFF) % len(subs)][0]
        high_price = unit(h1, 16) < (0.08 if book else 0.05) or sub == 465600
        if book:
            new_base = _log_uniform(600, 4000, unit(h2, 0))
            rank_base = int(_log_uniform(2_000, 6_000_000, unit(h2, 16)))
        else:
            new_base = _log_uniform(1000, 20000, unit(h2, 0))
            rank_base = int(_log_uniform(50, 800_000, unit(h2, 16)))
        if high_price:
            new_base *= lerp(4.0, 10.0, unit(h1, 32))
        has_used = unit(h2, 32) < (0.88 if book else 0.55)
        used_base = int(new_base * lerp(0.45, 0.95, unit(h2, 48))) if has_used else 0
        if unit(h3, 0) < 0.03:
            rank_base = -1
        no_drops = rank_base < 0 or unit(h3, 16) < 0.15
        drops = 0 if no_drops else max(1, min(90, int(30 * (200_000 / rank_base) ** 0.5)))
        sold = 0 if rank_base < 0 else int(3_000_000 / rank_base) // 50 * 50
        reviews = 0 if unit(h3, 32) < 0.05 else int(_log_uniform(1, 20_000, unit(h3, 48)))
        author = f"{pick(h4, FIRST_NAMES)} {pick(h4, LAST_NAMES, 16)}" if book else None
        brand = author or pick(h4, BRANDS, 32)
        if book:
            title = book_title(sub, h1, h2, h4)
            code = _ean13("978" + self.asins[i][:9])
        else:
            title = f"{brand} {pick(h1, THINGS[root], 48)} {100 + (h4 & 0x3FF)}"
            code = _ean13(f"0{fmix(key ^ 0x55) % 10**11:011d}")[1:]  # a UPC-A
        family = not book and unit(h1, 40) < 0.25
        parent = None
        if family:
            p = mix(self.seed, 0x9A4E, i // 4)
            parent = "B0" + "".join(_B36[(p >> (5 * n)) % 36] for n in range(8))
        image_bits = fmix(key ^ 0x66)
        image = "".join(_IMG[(image_bits >> (6 * n)) & 63] for n in range(10)) + "L.jpg"
        popular = 0 <= rank_base < 100_000
        return ProductProfile(
            index=i,
            asin=self.asins[i],
            key=key,
            root_cat=root,
            categories=(sub,),
            title=title,
            brand=brand,
            author=author,
            binding=pick(h4, _BINDINGS[root], 8),
            parent_asin=parent,
            is_adult=unit(h4, 24) < (0.005 if book else 0.02),
            image=image,
            code=code,
            new_base_cents=max(99, int(new_base)),
            used_base_cents=used_base,
            amazon_sells=unit(h1, 56) < (0.35 if book else 0.5),
            rank_base=rank_base,
            rank_drops_30=drops,
            rating=0 if reviews == 0 else int(lerp(30, 50.99, unit(h3, 8))),
            review_count=reviews,
            monthly_sold=sold,
            used_count_base=int(_log_uniform(1, 40, unit(h2, 40))) if has_used else 0,
            new_count_base=int(_log_uniform(1, 30, unit(h3, 40))),
            tracking_since_km=_TRACKING_FROM_KM + (fmix(key ^ 0x77) % _TRACKING_SPAN_MIN),
            refresh_min=45 if popular else (120, 240, 480, 720)[(h4 >> 40) & 3],
            refresh_phase_min=(h4 >> 44) % 720,
            event_threshold=event_threshold(key),
        )


def book_title(sub: int, h1: int, h2: int, h4: int) -> str:
    """A title that fits the book's sub-category (a cookbook reads like one)."""
    adjective, noun = pick(h1, ADJECTIVES, 48), pick(h2, NOUNS, 8)
    pattern = BOOK_TITLES.get(sub)
    if pattern is None:
        return f"The {adjective} {noun}"
    return pattern.format(
        adjective=adjective, noun=noun, subject=pick(h4, SUBJECTS, 48), n=10 + h2 % 90
    )


def root_category(key: int) -> int:
    share, cumulative = unit(key, 32), 0.0
    for root, _, root_share, _ in ROOT_CATEGORIES:
        cumulative += root_share
        if share < cumulative:
            return root
    return ROOT_CATEGORIES[-1][0]


def event_threshold(key: int) -> int:
    """A product changes in 60-100 % of its cycles."""
    return int(65536 * lerp(0.6, 1.0, unit(key, 16)))


@functools.lru_cache(maxsize=8)
def shared_catalogue(seed: int, size: int) -> Catalogue:
    """Catalogues are immutable once derived, so simulators with one seed share one."""
    return Catalogue(seed, size)
