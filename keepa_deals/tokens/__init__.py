"""The token budget every Keepa call asks first. See docs/token-manager.md."""

from keepa_deals.tokens.decision import Decision, Grant
from keepa_deals.tokens.manager import TokenManager
from keepa_deals.tokens.policy import ClassPolicy, TokenPolicy

__all__ = ["ClassPolicy", "Decision", "Grant", "TokenManager", "TokenPolicy"]
