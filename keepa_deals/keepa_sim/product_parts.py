"""Pieces of a product object: its fixed fields and its offers.

Serialising integers dominates /product, so parts are rendered to JSON text where it
pays: the fixed fields once per product, arrays indexed by price type from templates.
"""

from __future__ import annotations

import functools
import json
from typing import NamedTuple

from keepa_deals.keepa_sim.catalogue import ProductProfile, category_name, category_path
from keepa_deals.keepa_sim.hashing import MASK64, fmix, lerp, unit
from keepa_deals.keepa_sim.timeline import EventState
from keepa_deals.keepa_sim.wire import RawMembers

_GOLDEN = 0x9E3779B97F4A7C15
AMAZON_SELLER = "ATVPDKIKX0DER"
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_COMMENTS = ("Good copy, light wear.", "Like new.", "Some highlighting.", "Ships fast.", "")
_PRODUCT_GROUPS = {
    283155: "Book",
    172282: "Electronics",
    1055398: "Kitchen",
    165793011: "Toy",
    3375251: "Sports",
    2625373011: "DVD",
}


def static_members(p: ProductProfile, domain: int) -> RawMembers:
    """The fields of a product that never change, as JSON object members: every field
    of Keepa's product object that needs no request parameter, null where Keepa has no
    value for this kind of product (Keepa sends such fields as null)."""
    sub = p.categories[0]
    book = p.is_book
    h = fmix(p.key ^ 0x57A71C)
    slug = "-".join(p.title.replace(":", "").replace("(", "").replace(")", "").split())
    group = _PRODUCT_GROUPS[p.root_cat]
    fields: dict[str, object] = {
        "asin": p.asin,
        "domainId": domain,
        "title": p.title,
        "productType": 0,
        "parentAsin": p.parent_asin,
        "parentAsinHistory": None,
        "variationCSV": None,
        "rootCategory": p.root_cat,
        "categories": list(p.categories),
        "categoryTree": [{"catId": c, "name": category_name(c)} for c in category_path(sub)],
        "imagesCSV": p.image,
        "images": [{"l": p.image, "lH": 500, "lW": 333, "m": p.image, "mH": 160, "mW": 107}],
        "manufacturer": "Simulated Press" if book else p.brand,
        "brand": p.brand,
        "author": p.author,
        "contributors": [[p.author, "author"]] if p.author else None,
        "binding": p.binding,
        "productGroup": group,
        "type": "ABIS_BOOK" if book else "ABIS_PRODUCT",
        "eanList": [p.code] if book else None,
        "upcList": None if book else [p.code],
        "gtinList": ["0" + p.code if book else "00" + p.code],
        "bundleItems": None,
        "partNumber": None if book else f"{p.brand[:3].upper()}-{h % 100_000:05d}",
        "model": None if book else f"{p.brand[:3].upper()}{h % 1000}",
        "color": None,
        "size": None,
        "edition": None,
        "format": None,
        "numberOfItems": 1,
        "numberOfPages": 120 + p.index % 600 if book else -1,
        "publicationDate": 19_900_101 + (h >> 8) % 35 * 10_000 if book else -1,
        "releaseDate": -1,
        "languages": [["English", "Published"]] if book else None,
        "features": None if book else [f"{p.title} by {p.brand}", "One-year warranty"],
        "description": f"{p.title}. A simulated product.",
        "packageHeight": 20 + (h >> 16) % 80,
        "packageLength": 150 + (h >> 24) % 200,
        "packageWidth": 100 + (h >> 32) % 150,
        "packageWeight": 150 + (h >> 40) % 2000,
        "packageQuantity": 1,
        "itemHeight": 15 + (h >> 16) % 80,
        "itemLength": 140 + (h >> 24) % 200,
        "itemWidth": 95 + (h >> 32) % 150,
        "itemWeight": 120 + (h >> 40) % 2000,
        "ebayListingIds": None,
        "trackingSince": p.tracking_since_km,
        "listedSince": p.tracking_since_km,
        "hasReviews": p.review_count > 0,
        "monthlySold": p.monthly_sold,
        "monthlySoldHistory": [p.tracking_since_km, p.monthly_sold] if p.monthly_sold else None,
        "salesRankReference": p.root_cat if p.rank_base > 0 else -1,
        "salesRankReferenceHistory": (
            [p.tracking_since_km, p.root_cat] if p.rank_base > 0 else None
        ),
        "isAdultProduct": p.is_adult,
        "isEligibleForTradeIn": False,
        "isEligibleForSuperSaverShipping": False,
        "referralFeePercent": 15,
        "referralFeePercentage": 15.0,
        "variableClosingFee": 180 if book or p.root_cat == 2625373011 else None,
        "urlSlug": slug,
        "ingredients": None,
        "isHaul": None,
        "lastEbayUpdate": 0,
        "suggestedLowerPrice": None,
        "competitivePriceThreshold": None,
        "hazardousMaterials": None,
        "isMerchOnDemand": False,
        "isHeatSensitive": False,
        "returnRate": None,
        "promotions": None,
        "variations": None,
        "availabilityAmazon": 0 if p.amazon_sells else -1,
        "availabilityAmazonDelay": [0, 0] if p.amazon_sells else None,
        "coupon": None,
        "couponHistory": None,
        "newPriceIsMAP": False,
        "fbaFees": {
            "storageFee": 8 + (h >> 48) % 20,
            "storageFeeTax": 0,
            "pickAndPackFee": 306 + (h >> 52) % 200,
            "pickAndPackFeeTax": 0,
        },
        "audienceRating": None,
        "unitCount": None,
        "scent": None,
        "shortDescription": None,
        "activeIngredients": None,
        "specialIngredients": None,
        "itemForm": None,
        "itemTypeKeyword": None,
        "recommendedUsesForProduct": None,
        "pattern": None,
        "brandStoreName": None if book else p.brand,
        "brandStoreUrl": None if book else f"/stores/{p.brand}/page/{h % 10**8:08d}",
        "brandStoreUrlName": None if book else p.brand,
        "specificUsesForProduct": None,
        "websiteDisplayGroupName": group,
        "websiteDisplayGroup": group.lower().replace(" ", "_") + "_display_on_website",
        "formats": None,
        "businessDiscount": None,
        "lastBusinessDiscountUpdate": None,
        "safetyWarning": None,
        "productBenefit": None,
        "batteriesRequired": False,
        "batteriesIncluded": False,
        "targetAudienceKeyword": None,
        "style": None,
        "includedComponents": None,
        "materials": None,
        "material": None,
        "specialFeatures": None,
    }
    return RawMembers(json.dumps(fields, separators=(",", ":"))[1:-1])


def untracked_members(asin: str, domain: int) -> RawMembers:
    """A well-formed ASIN Keepa does not track: the product comes back without data."""
    fields = {
        "asin": asin,
        "domainId": domain,
        "productType": 3,  # UNACCESSIBLE: no data
        "title": None,
        "trackingSince": 0,
        "lastUpdate": 0,
        "lastPriceChange": 0,
        "rootCategory": 0,
        "categories": None,
        "csv": None,
    }
    return RawMembers(json.dumps(fields, separators=(",", ":"))[1:-1])


def videos_json(p: ProductProfile) -> str:
    """videos=1: one seller video per product (Keepa: null when there is none)."""
    video = {
        "title": p.title,
        "image": p.image,
        "duration": 30 + p.key % 90,
        "creator": "Seller",
        "name": p.brand,
        "url": f"https://m.media-amazon.com/images/S/vse-vms/{p.asin}.mp4",
    }
    return json.dumps([video], separators=(",", ":"))


def aplus_json(p: ProductProfile) -> str:
    """aplus=1: one A+ module from the manufacturer."""
    module = {
        "text": [f"About {p.title}"],
        "image": [p.image],
        "video": None,
        "imageAltText": [p.title],
        "asin": None,
    }
    return json.dumps([{"module": [module], "fromManufacturer": True}], separators=(",", ":"))


class Offer(NamedTuple):
    offer_id: int
    seller_id: str
    since_km: int
    price: int
    shipping: int
    condition: int  # 1 new, 2-5 used (like new .. acceptable)
    comment: str | None
    fba: bool
    amazon: bool
    stock: int | None

    @property
    def landed(self) -> int:
        return self.price + self.shipping


# One offer object. Most of it is constant, so it is cheaper to fill in than to encode.
_OFFER = (
    '{{"offerId":{0},"lastSeen":{1},"sellerId":"{2}","offerCSV":[{3},{4},{5}],'
    '"condition":{6},"conditionComment":{7},"isPrime":{8},"isMAP":false,"isShippable":true,'
    '"isAddonItem":false,"isPreorder":false,"isWarehouseDeal":false,"isScam":false,'
    '"isAmazon":{9},"isFBA":{8},"isPrimeExcl":false,"primeExclCSV":null,"shipsFromChina":false,'
    '"minOrderQty":0,"couponHistory":null,"offerDuplicates":null{10}}}'
)


def offers_json(offers: list[Offer], now_km: int) -> str:
    def one(o: Offer) -> str:
        stock = "" if o.stock is None else f',"stockCSV":[{now_km},{o.stock}]'
        comment = "null" if o.comment is None else json.dumps(o.comment)
        fba = "true" if o.fba else "false"
        amazon = "true" if o.amazon else "false"
        return _OFFER.format(
            o.offer_id,
            now_km,
            o.seller_id,
            o.since_km,
            o.price,
            o.shipping,
            o.condition,
            comment,
            fba,
            amazon,
            stock,
        )

    return "[" + ",".join(one(o) for o in offers) + "]"


@functools.cache
def seller_id(index: int) -> str:
    """Sellers come from a fixed pool, so one seller has offers on many products."""
    h = fmix(index * _GOLDEN & MASK64)
    return "A" + "".join(_B36[(h >> (5 * n)) % 36] for n in range(12))


def live_offers(
    p: ProductProfile, state: EventState, limit: int, stock: bool
) -> tuple[list[Offer], int]:
    """Up to `limit` live offers and how many were found in all. The cheapest used and
    new offers are the product's current used and new prices."""
    found = state.count_new + state.count_used
    shown = min(found, limit)
    n_used = round(shown * state.count_used / found) if found else 0
    offers: list[Offer] = []
    for k in range(shown):
        h = fmix(((p.key ^ 0x0FFE) + (state.cycle * 131 + k) * _GOLDEN) & MASK64)
        used = k < n_used
        amazon = not used and k == n_used and state.amazon > 0
        base = state.used if used else state.new
        fba = amazon or unit(h, 16) < 0.3
        offers.append(
            Offer(
                offer_id=k,
                seller_id=AMAZON_SELLER if amazon else seller_id((h >> 32) % 500 + p.key % 7),
                since_km=state.time_km,
                price=base if k in (0, n_used) else round(base * lerp(1.0, 2.2, unit(h, 0))),
                shipping=0 if fba else (399 if used else 499),
                condition=2 + (h >> 24) % 4 if used else 1,
                comment=_COMMENTS[(h >> 40) % len(_COMMENTS)] if used else None,
                fba=fba,
                amazon=amazon,
                stock=1 + (h >> 48) % 10 if stock else None,
            )
        )
    return offers, found
