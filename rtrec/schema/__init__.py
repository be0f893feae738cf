"""One definition of the records; wire, Flink, Spark and Arrow forms are derived from it.

Importing this package needs neither PyFlink, PySpark nor pyarrow: the engine forms import their
engine only when called.
"""

from rtrec.schema.events import CATALOGUE_SCHEMA, EVENT_SCHEMA, EVENT_TYPES
from rtrec.schema.fields import Field, Kind, RecordSchema
from rtrec.schema.wire import Validation, encode, validate

__all__ = [
    "CATALOGUE_SCHEMA",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "Field",
    "Kind",
    "RecordSchema",
    "Validation",
    "encode",
    "validate",
]
