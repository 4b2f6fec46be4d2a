"""Reading stored values without trusting them: each one is checked against the type its
record needs, and a value that is not that type is a ``BadRow`` naming the row.

A database that another program, a hand-made ``UPDATE`` or a damaged file wrote may hold
anything in any column (SQLite keeps ``'abc'`` in a REAL column). The drivers parse some
columns while the rows are fetched (SQLite's timestamps and JSON): ``readable`` selects
those so that a value that does not parse comes back as ``Unreadable`` instead of
aborting the fetch, and ``db.records`` names its row. ``undecodable`` finds the row of a
text that is not UTF-8, which SQLite's driver refuses without saying where.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

from sqlalchemy import JSON, Column, Connection, String, Table, TypeDecorator, select, type_coerce
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from db.errors import BadRow
from db.tables import UTCDateTime, metadata

__all__ = [
    "At",
    "Unreadable",
    "conform",
    "readable",
    "undecodable",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """A stored value the driver could not parse (as it was stored)."""

    raw: Any

    def __repr__(self) -> str:
        return repr(self.raw)


class _Lenient(TypeDecorator[Any]):
    """Reads a column as ``inner`` does, but a value that does not parse is ``Unreadable``."""

    impl = String  # never bound: the wrapped columns are only read
    cache_ok = True

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        process = self.inner.dialect_impl(dialect).result_processor(dialect, coltype)
        if process is None:
            return None

        def lenient(value: Any) -> Any:
            try:
                return process(value)
            except (ValueError, TypeError, OverflowError):
                return Unreadable(value)

        return lenient


@cache
def _lenient(column: Column[Any]) -> Any:
    return type_coerce(column, _Lenient(column.type)).label(column.name)


def readable(*columns: Column[Any] | Table) -> list[Any]:
    """``columns`` (a table: all of its columns) to select, those the driver parses
    (timestamps, JSON) wrapped so that a value that does not parse comes back
    ``Unreadable``; the others as they are."""
    out = []
    for item in columns:
        for column in item.columns if isinstance(item, Table) else (item,):
            parsed = isinstance(column.type, UTCDateTime | JSON)
            out.append(_lenient(column) if parsed else column)
    return out


class At:
    """Where a value comes from (``table measurements, row id 12``), to name it when it is
    bad. Made once per row read, so it formats nothing until then."""

    __slots__ = ("_row", "_table", "_id")

    def __init__(self, row: str = "", *, table: str = "", row_id: object = None) -> None:
        self._row, self._table, self._id = row, table, row_id

    @property
    def row(self) -> str:
        return self._row or f"table {self._table}, row id {self._id}"

    def bad(self, column: str, value: object, expected: str) -> BadRow:
        return BadRow(self.row, f"{column} {shown(value)} is not {expected}")

    def numbers(self, column: str, values: object) -> tuple[float, ...]:
        """``values`` (a JSON list) as finite floats."""
        if not isinstance(values, list):
            raise self.bad(column, getattr(values, "raw", values), "a JSON list")
        if all(type(v) is float and math.isfinite(v) for v in values):
            return tuple(values)
        return tuple(self.number(f"{column}[{i}]", v) for i, v in enumerate(values))

    def missing(self, column: str, key: str, raw: dict[str, Any]) -> BadRow:
        keys = ", ".join(shown(k) for k in sorted(raw)[:8]) or "none"
        return BadRow(self.row, f"{column} has no {key!r} (its keys: {keys})")

    def text(self, column: str, value: object, *, optional: bool = False) -> Any:
        """``value`` if it is a string (or None, where ``optional``)."""
        if isinstance(value, str) and _is_utf8(value) or optional and value is None:
            return value
        raise self.bad(column, value, "text")

    def integer(self, column: str, value: object, *, optional: bool = False) -> Any:
        if type(value) is int or optional and value is None:
            return value
        raise self.bad(column, value, "a whole number")

    def positive(self, column: str, value: object) -> int:
        if type(value) is int and value >= 1:
            return value
        raise self.bad(column, value, "a whole number from 1")

    def number(self, column: str, value: object, *, optional: bool = False) -> Any:
        """``value`` as a float if it is a finite number."""
        if optional and value is None:
            return None
        if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
            return float(value)  # type: ignore[arg-type]
        raise self.bad(column, value, "a finite number")

    def flag(self, column: str, value: object) -> bool:
        if isinstance(value, bool):
            return value
        raise self.bad(column, value, "true or false")

    def timestamp(self, column: str, value: object, *, optional: bool = False) -> Any:
        import datetime as dt

        if isinstance(value, dt.datetime) or optional and value is None:
            return value
        raise self.bad(column, value, "a timestamp")

    def mapping(self, column: str, value: object, *, optional: bool = False) -> Any:
        if isinstance(value, dict) or optional and value is None:
            return value
        raise self.bad(column, value, "a JSON object")

    def record(self, cls: type[T], column: str, value: object) -> T:
        """``value`` (a JSON object) as an instance of the dataclass ``cls``."""
        return conform(cls, self.mapping(column, value), self, column)


def shown(value: object) -> str:
    """``value`` as a short line: escaped (no control or non-ASCII bytes reach a terminal)
    and cut at 60 characters."""
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def conform(cls: type[T], raw: dict[str, Any], at: At, column: str) -> T:
    """``raw`` as the dataclass ``cls``, every field checked against its annotation (nested
    dataclasses, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``); keys the class does not
    have are ignored, a field it needs is a ``BadRow``."""
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{column}.{f.name}"
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise at.missing(column, f.name, raw)
            continue
        values[f.name] = _value(hints[f.name], raw[f.name], at, key)
    return cls(**values)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_NOT = {str: "text", int: "a whole number", float: "a finite number", bool: "true or false"}


def _value(hint: Any, value: Any, at: At, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, at, key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise at.bad(key, value, "a list")
        return tuple(_value(args[0], v, at, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise at.bad(key, value, "a JSON object")
        return {k: _value(args[1], v, at, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise at.bad(key, value, "a JSON object")
        return conform(hint, value, at, key)  # type: ignore[arg-type]
    if hint is str:
        return at.text(key, value)
    if hint is bool:
        return at.flag(key, value)
    if hint is int:
        return at.integer(key, value)
    if hint is float:
        return at.number(key, value)
    raise AssertionError(f"no check for {hint!r}")


_UNDECODABLE = re.compile(r"Could not decode to UTF-8 column '([^']*)'")


def undecodable(connection: Connection, error: sa_exc.DBAPIError) -> BadRow | None:
    """The row behind SQLite's "Could not decode to UTF-8 column ..." (which names neither
    the table nor the row), or None for any other error. Only run after that error: it
    reads the column of every table that has one of that name."""
    match = _UNDECODABLE.search(str(error.orig))
    if match is None or connection.dialect.name != "sqlite":
        return None
    name = match[1]
    columns = [c for t in metadata.sorted_tables for c in t.columns if c.name == name]
    if not columns:  # a label: look at every text column
        columns = [
            c
            for t in metadata.sorted_tables
            for c in t.columns
            if isinstance(c.type, String | JSON)
        ]
    connection.rollback()
    for column in columns:
        table = column.table
        raw = type_coerce(column, _Bytes()).label("raw")
        for row_id, value in connection.execute(select(table.c.id, raw)):
            if isinstance(value, bytes):
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    where = At(table=table.name, row_id=row_id)
                    return where.bad(column.name, value, "UTF-8 text")
    return None


class _Bytes(TypeDecorator[Any]):
    """A text column's stored bytes, not decoded (SQLite's CAST AS BLOB)."""

    impl = String
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        from sqlalchemy import LargeBinary, cast

        return cast(column, LargeBinary)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return None
