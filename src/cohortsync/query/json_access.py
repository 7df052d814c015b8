"""Typed access to JSON document properties, per SQL dialect.

Every expression here is *two-valued* where it is a predicate (never SQL NULL), so NOT and
negative operators behave as the reference evaluator does for missing properties.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

Document = ColumnElement[Any]
Predicate = ColumnElement[bool]


class JsonAccess(Protocol):
    """How one dialect reads a typed property out of a JSON document column."""

    def has_kind(self, document: Document, name: str, kind: str) -> Predicate:
        """The property is present with JSON type ``kind``: 'number', 'string', 'boolean',
        'null', 'array' or 'object'."""
        ...

    def is_present(self, document: Document, name: str) -> Predicate:
        """The property is present and not null."""
        ...

    def number(self, document: Document, name: str) -> ColumnElement[Any]:
        """The property as a number (only meaningful where kind is 'number')."""
        ...

    def text(self, document: Document, name: str) -> ColumnElement[str]:
        """The property as text, compared by code point (where kind is 'string')."""
        ...

    def boolean(self, document: Document, name: str) -> ColumnElement[Any]:
        """The property as a boolean (where kind is 'boolean')."""
        ...

    def substring(self, haystack: ColumnElement[str], needle: str) -> Predicate:
        """Case-sensitive substring test."""
        ...

    def list_contains(self, document: Document, name: str, value: Any) -> Predicate:
        """The property is a list with an element equal (typed) to ``value``."""
        ...


def _plain(name: str) -> bool:
    """Whether a JSON path can address ``name``: every character printable ASCII other than
    ``"`` and ``\\``. SQLite compares a path's label with the key as written in the stored text,
    and its writers escape the rest (a ``"``, a ``\\``, control and non-ASCII characters)."""
    return name.isascii() and name.isprintable() and '"' not in name and "\\" not in name


def _path(name: str) -> str:
    """The quoted label: ``.``, ``[``, ``$``, ``'`` and spaces are plain text inside quotes."""
    return '$."' + name + '"'


class SqliteJson:
    """JSON1 functions on a TEXT column.

    A property is read through a JSON path where the path can name it (``_plain``), else from
    the document's ``json_each`` rows, which hold every key decoded: any UTF-8 name works.
    """

    _KINDS = {
        "number": ("integer", "real"),
        "string": ("text",),
        "boolean": ("true", "false"),
        "null": ("null",),
        "array": ("array",),
        "object": ("object",),
    }

    def _entry(self, document: Document, name: str, column: str) -> ColumnElement[Any]:
        """``column`` ('type' or 'value') of the document's top-level entry keyed ``name``."""
        entries = sa.func.json_each(document).table_valued("key", "type", "value")
        return sa.select(entries.c[column]).where(entries.c.key == name).limit(1).scalar_subquery()

    def _type(self, document: Document, name: str) -> ColumnElement[Any]:
        """json_type names numbers 'integer'/'real', strings 'text', booleans 'true'/'false';
        NULL when missing and 'null' for a JSON null."""
        if _plain(name):
            return sa.func.json_type(document, _path(name))
        return self._entry(document, name, "type")

    def _value(self, document: Document, name: str) -> ColumnElement[Any]:
        """INTEGER/REAL for numbers, TEXT for strings, JSON text for lists and objects."""
        if _plain(name):
            return sa.func.json_extract(document, _path(name))
        return self._entry(document, name, "value")

    def has_kind(self, document: Document, name: str, kind: str) -> Predicate:
        """The property's json_type is one of the kind's names."""
        names = self._KINDS[kind]
        raw = self._type(document, name)
        return raw == names[0] if len(names) == 1 else raw.in_(names)

    def is_present(self, document: Document, name: str) -> Predicate:
        """json_type is NULL when missing and 'null' for a JSON null."""
        return self._type(document, name) != "null"

    def number(self, document: Document, name: str) -> ColumnElement[Any]:
        """The value is INTEGER/REAL for numbers."""
        return self._value(document, name)

    def text(self, document: Document, name: str) -> ColumnElement[str]:
        """The value is TEXT for strings (compared bytewise: code point order)."""
        return self._value(document, name)

    def boolean(self, document: Document, name: str) -> ColumnElement[Any]:
        """json_type distinguishes true from false."""
        return self._type(document, name) == "true"

    def substring(self, haystack: ColumnElement[str], needle: str) -> Predicate:
        """instr() is case-sensitive."""
        return sa.func.instr(haystack, needle) > 0

    def list_contains(self, document: Document, name: str, value: Any) -> Predicate:
        """An EXISTS over json_each of the list (json_each of a scalar yields the scalar itself,
        so the property must be an array first; a list read by key is JSON text, and only a
        list's text is handed to json_each, never a string that is not JSON)."""
        if _plain(name):
            listed = sa.func.json_each(document, _path(name))
        else:
            array = sa.case(
                (self.has_kind(document, name, "array"), self._value(document, name)),
                else_=sa.literal("[]"),
            )
            listed = sa.func.json_each(array)
        elements = listed.table_valued("type", "atom")
        if isinstance(value, bool):
            match = elements.c.type == ("true" if value else "false")
        elif isinstance(value, int | float):
            match = sa.and_(elements.c.type.in_(("integer", "real")), elements.c.atom == value)
        else:
            match = sa.and_(elements.c.type == "text", elements.c.atom == value)
        found = sa.exists(sa.select(sa.literal(1)).select_from(elements).where(match))
        return sa.and_(self.has_kind(document, name, "array"), found)


class PostgresJson:
    """jsonb operators."""

    def _element(self, document: Document, name: str) -> ColumnElement[Any]:
        return document.op("->", return_type=JSONB)(sa.literal(name, sa.Text))

    def _kind(self, document: Document, name: str) -> ColumnElement[str]:
        return sa.func.jsonb_typeof(self._element(document, name))

    def has_kind(self, document: Document, name: str, kind: str) -> Predicate:
        """jsonb_typeof already uses the common names."""
        return self._kind(document, name) == kind

    def is_present(self, document: Document, name: str) -> Predicate:
        """jsonb_typeof is NULL when missing and 'null' for a JSON null."""
        return self._kind(document, name) != "null"

    def _as_text(self, document: Document, name: str) -> ColumnElement[str]:
        return document.op("->>", return_type=sa.Text)(sa.literal(name, sa.Text))

    def number(self, document: Document, name: str) -> ColumnElement[Any]:
        """Cast only where the value is a number, so no row can fail the cast."""
        return sa.case(
            (
                self.has_kind(document, name, "number"),
                sa.cast(self._as_text(document, name), sa.Numeric),
            ),
            else_=sa.null(),
        )

    def text(self, document: Document, name: str) -> ColumnElement[str]:
        """Text in the "C" collation: code point order, like SQLite and Python."""
        return self._as_text(document, name).collate("C")

    def boolean(self, document: Document, name: str) -> ColumnElement[Any]:
        """Compare with the JSON literal true."""
        return self._element(document, name) == sa.cast(sa.literal("true"), JSONB)

    def substring(self, haystack: ColumnElement[str], needle: str) -> Predicate:
        """strpos() is case-sensitive."""
        return sa.func.strpos(haystack, needle) > 0

    def list_contains(self, document: Document, name: str, value: Any) -> Predicate:
        """An element of the list equals ``value`` as jsonb (typed; numbers by value). Not
        ``@>``, which also looks inside nested lists."""
        element = self._element(document, name)
        array = sa.case(
            (sa.func.jsonb_typeof(element) == "array", element),
            else_=sa.cast(sa.literal("[]"), JSONB),
        )
        elements = sa.func.jsonb_array_elements(array).table_valued("value")
        probe = sa.cast(sa.literal(orjson.dumps(value).decode()), JSONB)
        return sa.exists(
            sa.select(sa.literal(1)).select_from(elements).where(elements.c.value == probe)
        )


def json_access(dialect_name: str) -> JsonAccess:
    """The JsonAccess for an engine's dialect."""
    if dialect_name == "sqlite":
        return SqliteJson()
    if dialect_name == "postgresql":
        return PostgresJson()
    raise ValueError(f"cohort queries do not support the {dialect_name!r} dialect yet")
