"""Rows to dataclasses and back: a dataclass's field names are its table's column names,
so each table is described once, by its dataclass, and SQL is built from the fields."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def columns(cls: type[DataclassInstance] | DataclassInstance) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def from_row(cls: type[D], row: sqlite3.Row) -> D:
    """The dataclass `cls` from a row holding (at least) every one of its columns."""
    return cls(**{name: row[name] for name in columns(cls)})


def params(obj: DataclassInstance) -> dict[str, Any]:
    """Named SQL parameters (`:column`) for every field; enums as their values."""
    out: dict[str, Any] = {}
    for name in columns(obj):
        value = getattr(obj, name)
        out[name] = value.value if isinstance(value, Enum) else value
    return out


def require_int(owner: str, name: str, value: object, *, optional: bool = True) -> None:
    """Money and times are integers. A float, a bool or "$246.26" is a bug upstream;
    fail where it happens rather than store it (failure mode: prices as text)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {value!r}")
