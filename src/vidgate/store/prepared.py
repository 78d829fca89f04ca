"""The poll's reads compiled once and, on SQLite's quick path, run straight on the driver.

Through SQLAlchemy a point lookup of a task costs about four times the statement itself (the
cache key, an execution context, event dispatch, the result's machinery: 30 µs against 8 µs
measured here), and a poll makes two. A ``Prepared`` statement keeps what SQLAlchemy would
have worked out each time (the SQL text, each parameter's place and conversion, each column's
conversion back: JSON text to lists, 0 or 1 to booleans), so ``first`` and ``scalar`` on a
``QuickConnection`` only convert and execute; ``sqlite3`` keeps the statement itself prepared
in its per-connection cache. On any other connection they run the statement as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from vidgate.store.database import Conn, QuickConnection

Converter = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    sql: str
    parameters: Sequence[tuple[str, Any, Converter]]  # (name, fixed value or None, conversion)
    columns: Sequence[tuple[str, Converter]]

    def arguments(self, given: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, fixed, convert in self.parameters:
            value = given[name] if fixed is None else fixed
            values.append(value if convert is None or value is None else convert(value))
        return values

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if convert is None else convert(value)
            for (name, convert), value in zip(self.columns, values, strict=True)
        }


class Prepared:
    """A SELECT whose compiled form is kept, for the quick path's dialect (compiled on first
    use). Literal values in it stay fixed; ``bindparam`` values come with each call."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._plan: _Plan | None = None

    def plan(self, dialect: Dialect) -> _Plan:
        if self._plan is None:
            compiled = self.statement.compile(dialect=dialect)
            if compiled.positiontup is None or "POSTCOMPILE" in compiled.string:
                raise ValueError("a Prepared statement takes plain positional parameters only")
            parameters = []
            for name in compiled.positiontup:
                bind = compiled.binds[name]
                fixed = None if bind.required else bind.effective_value
                impl = bind.type.dialect_impl(dialect)
                parameters.append((name, fixed, impl.bind_processor(dialect)))
            columns = [
                (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in self.statement.selected_columns
            ]
            self._plan = _Plan(compiled.string, parameters, columns)
        return self._plan


def _rows(conn: QuickConnection, prepared: Prepared, given: Mapping[str, Any]) -> list[Any]:
    plan = prepared.plan(conn.dialect)
    arguments = plan.arguments(given)
    try:
        return conn.driver.execute(plan.sql, arguments).fetchall()
    except sqlite3.Error as error:
        # As SQLAlchemy would raise it: the callers' error handling sees the same exceptions.
        raise DBAPIError.instance(plan.sql, arguments, error, sqlite3.Error) from error


async def first(
    conn: Conn, prepared: Prepared, given: Mapping[str, Any]
) -> Mapping[Any, Any] | None:
    """The first row, by column name, or None."""
    if isinstance(conn, QuickConnection):
        rows = _rows(conn, prepared, given)
        return prepared.plan(conn.dialect).row(rows[0]) if rows else None
    row = (await conn.execute(prepared.statement, given)).first()
    return row._mapping if row is not None else None


async def scalar(conn: Conn, prepared: Prepared, given: Mapping[str, Any]) -> Any:
    """The first column of the first row, or None."""
    if isinstance(conn, QuickConnection):
        rows = _rows(conn, prepared, given)
        if not rows:
            return None
        convert = prepared.plan(conn.dialect).columns[0][1]
        value = rows[0][0]
        return value if convert is None else convert(value)
    return (await conn.execute(prepared.statement, given)).scalar()
