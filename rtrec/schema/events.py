"""The one definition of the event and the item-catalogue records (ARCHITECTURE.md §2).

Column names are constants so that jobs and tests never spell them twice.
"""

from __future__ import annotations

from rtrec.schema.fields import Field, Kind, RecordSchema

EVENT_ID = "event_id"
USER_ID = "user_id"
SESSION_ID = "session_id"
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
EVENT_TS = "event_ts"
CATEGORY_ID = "category_id"
PRICE = "price"
QUANTITY = "quantity"
DEVICE = "device"
CHANNEL = "channel"
REGION = "region"
REC_ID = "rec_id"
MODEL_VERSION = "model_version"

# The wire key carrying the schema version of a JSON record.
SCHEMA_VERSION_KEY = "schema_version"

VIEW, CLICK, ADD_TO_CART, REMOVE_FROM_CART, PURCHASE, IMPRESSION = (
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "impression",
)
EVENT_TYPES: tuple[str, ...] = (VIEW, CLICK, ADD_TO_CART, REMOVE_FROM_CART, PURCHASE, IMPRESSION)

EVENT_SCHEMA = RecordSchema(
    name="event",
    version=1,
    fields=(
        Field(EVENT_ID, Kind.STRING, False, "unique id; the deduplication key"),
        Field(
            USER_ID, Kind.STRING, False, "user id, pseudonymised at ingestion when privacy is on"
        ),
        Field(SESSION_ID, Kind.STRING, False, "session id (derived by the adapter when absent)"),
        Field(ITEM_ID, Kind.STRING, False, "item id"),
        Field(EVENT_TYPE, Kind.STRING, False, "what the user did", choices=EVENT_TYPES),
        Field(EVENT_TS, Kind.LONG, False, "event time, UTC epoch milliseconds", minimum=0),
        Field(CATEGORY_ID, Kind.STRING, True, "leaf category of the item"),
        Field(PRICE, Kind.DOUBLE, True, "unit price", minimum=0),
        Field(QUANTITY, Kind.INT, True, "units carted or bought", minimum=1),
        Field(DEVICE, Kind.STRING, True, "device class, e.g. mobile, desktop, app"),
        Field(CHANNEL, Kind.STRING, True, "traffic channel, e.g. organic, ads, email"),
        Field(REGION, Kind.STRING, True, "coarse region"),
        Field(REC_ID, Kind.STRING, True, "id of the served recommendation this event answers"),
        Field(MODEL_VERSION, Kind.STRING, True, "model version that produced that recommendation"),
    ),
)

CATALOGUE_ITEM_ID = ITEM_ID
CATEGORY_PATH = "category_path"
BRAND = "brand"
TITLE = "title"
CREATED_TS = "created_ts"

CATALOGUE_SCHEMA = RecordSchema(
    name="catalogue_item",
    version=1,
    fields=(
        Field(CATALOGUE_ITEM_ID, Kind.STRING, False, "item id"),
        Field(CATEGORY_ID, Kind.STRING, False, "leaf category"),
        Field(CATEGORY_PATH, Kind.STRING, True, "category path from the root, '/'-separated"),
        Field(BRAND, Kind.STRING, True, "brand"),
        Field(PRICE, Kind.DOUBLE, True, "list price", minimum=0),
        Field(TITLE, Kind.STRING, True, "title"),
        Field(CREATED_TS, Kind.LONG, False, "when the item appeared, UTC epoch ms", minimum=0),
    ),
)
