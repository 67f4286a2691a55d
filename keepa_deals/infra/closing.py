"""`with obj:` for anything that owns something to close, written once.

A class lists what it must undo in `close()` (an alias such as `close = release` is
enough) and inherits `__enter__`/`__exit__` from `Closing`. Owners of several resources
keep them in a `contextlib.ExitStack`: closed newest first, each one even when another
fails, and safe to close twice.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """`with obj:` returns obj and calls `obj.close()` on the way out, however it left."""

    def close(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
