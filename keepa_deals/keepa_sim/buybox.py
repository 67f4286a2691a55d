"""Who holds the new and the used buy box in a product state, and their histories.

A holder is drawn from the product's key and the state's price cycle, so a product's
buy box changes only when its prices do, and the same state always names the same seller.
"""

from __future__ import annotations

from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.hashing import fmix
from keepa_deals.keepa_sim.product_parts import AMAZON_SELLER, seller_id
from keepa_deals.keepa_sim.timeline import EventState


def buybox_seller(p: ProductProfile, state: EventState) -> str:
    """Who holds the new buy box in a state: Amazon when it sells, else a seller."""
    if state.new <= 0:
        return "-1"
    if state.amazon > 0:
        return AMAZON_SELLER
    return seller_id((fmix(p.key ^ (state.cycle * 0x9E37 & 0xFFFFFFFF)) >> 8) % 500)


def used_buybox_seller(p: ProductProfile, state: EventState) -> str:
    """The used buy box: a good-condition FBA offer (BUY_BOX_USED_SHIPPING's price)."""
    if state.used <= 0:
        return ""
    return seller_id((fmix(p.key ^ 0xB0B ^ (state.cycle * 0x9E37 & 0xFFFFFFFF)) >> 8) % 500)


def buybox_history(p: ProductProfile, states: list[EventState]) -> list[str]:
    """[time, sellerId, ...] at each change of the buy box holder ("-1": nobody)."""
    out: list[str] = []
    last = None
    for st in states:
        seller = buybox_seller(p, st)
        if seller != last:
            out += (str(st.time_km), seller)
            last = seller
    return out


def used_buybox_history(p: ProductProfile, states: list[EventState]) -> list[str]:
    """[time, sellerId, condition, isFBA, ...] ("" as the seller: no used buy box)."""
    out: list[str] = []
    last = None
    for st in states:
        seller = used_buybox_seller(p, st)
        if seller != last:
            out += (str(st.time_km), seller, "4" if seller else "", "1" if seller else "")
            last = seller
    return out
