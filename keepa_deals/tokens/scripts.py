"""The token scripts, loaded from package files and registered once per client.

`register_script` returns a Script that reloads itself after NOSCRIPT (a Redis restart
or SCRIPT FLUSH); raw SCRIPT LOAD + EVALSHA would not.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

_ENTRY_POINTS = ("acquire", "settle", "status", "recharge")


@cache
def source(name: str) -> str:
    """lib.lua followed by the entry script: Redis scripts cannot import each other."""
    if name not in _ENTRY_POINTS:
        raise ValueError(f"no token script {name!r}")
    lua = resources.files("keepa_deals.tokens") / "lua"
    return (
        (lua / "lib.lua").read_text(encoding="utf-8")
        + "\n"
        + (lua / f"{name}.lua").read_text(encoding="utf-8")
    )


class TokenScripts:
    def __init__(self, client: redis.Redis) -> None:
        self.acquire: Script = client.register_script(source("acquire"))
        self.settle: Script = client.register_script(source("settle"))
        self.status: Script = client.register_script(source("status"))
        self.recharge: Script = client.register_script(source("recharge"))

    @staticmethod
    def call(script: Script, keys: list[str], args: list[Any]) -> Any:
        return script(keys=keys, args=args)
