"""The store's errors. Each names what is wrong and what to do about it."""

from __future__ import annotations

from keepa_deals.errors import KeepaDealsError


class StoreError(KeepaDealsError):
    """The deals database cannot be used as it is."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer keepa-deals than this one.

    Writing to it with older code is how columns go missing unnoticed (failure mode: schema drift),
    so the store refuses to open it instead.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: schema version {found} is newer than this keepa-deals supports "
            f"({supported}); upgrade keepa-deals or point DEALS_DB_PATH at another file"
        )


class SchemaDrift(StoreError):
    """The database's tables differ from what its schema version promises."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{path}: the schema differs from its migrations (edited by hand?): "
            + "; ".join(problems)
        )
