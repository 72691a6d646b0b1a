"""``COPY … FROM STDIN (FORMAT BINARY)`` of rows into a table, the way every projection table is written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

COPY_TYPE = {
    "integer": "int4",
    "bigint": "int8",
    "smallint": "int2",
    "double precision": "float8",
    'text COLLATE "C"': "text",
}
"""The binary COPY type of each SQL column type spelled otherwise in the table definitions (others: the same)."""


def copy_types(sql_types: Iterable[str]) -> list[str]:
    """The binary COPY types of columns declared with ``sql_types``."""
    return [COPY_TYPE.get(t, t) for t in sql_types]


def copy_rows(
    cur: psycopg.Cursor[TupleRow],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[object]],
) -> None:
    """COPY ``rows`` (values in the order of ``columns``, of the binary ``types``) into ``table``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
