"""Service fixtures: a fresh deals database per test, the same as the store tests'."""

from tests.store.conftest import conn, db_path

__all__ = ["conn", "db_path"]
