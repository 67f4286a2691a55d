"""The base of every error keepa-deals raises, and the settings' error.

Each layer declares its own errors under `KeepaDealsError` (keepa/errors.py,
tokens/errors.py, store/errors.py, ...); each carries what its caller needs to act.
"""

from __future__ import annotations


class KeepaDealsError(Exception):
    """Base class of every error raised by keepa-deals."""


# --- configuration ---------------------------------------------------------------


class ConfigError(KeepaDealsError, ValueError):
    """A setting is invalid. Names the variable, the value and what is allowed."""

    def __init__(self, variable: str, value: object, allowed: str) -> None:
        self.variable = variable
        self.value = value
        self.allowed = allowed
        super().__init__(f"{variable}={value!s}: {allowed}")
