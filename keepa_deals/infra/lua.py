"""The one way a Lua script for Redis is read from the package.

Redis scripts cannot import each other, so a script that shares a library is sent as
the library followed by the script: `lua_source(pkg, "lib", "acquire")`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def lua_source(package: str, *names: str) -> str:
    """The scripts `names` from `package`'s `lua/` folder, joined by newlines, in order."""
    folder = resources.files(package) / "lua"
    return "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in names)
