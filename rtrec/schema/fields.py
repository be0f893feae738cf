"""The building blocks of record definitions; engine types are derived from these elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """Logical column types. Timestamps travel as epoch milliseconds (LONG) in every engine, so
    the wire, the lake and the stream agree bit for bit; engines derive their own time columns."""

    STRING = "string"
    LONG = "long"
    INT = "int"
    DOUBLE = "double"


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    nullable: bool
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


@dataclass(frozen=True)
class RecordSchema:
    """A named, versioned, ordered list of fields."""

    name: str
    version: int
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")
