"""Spark twin of online CF: the batch contract of docs/online_cf.md §7 as DataFrame functions
(no I/O), held equal to ``rtrec.cf.compute_reference`` by tests/spark/test_cf_twin.py and to
the Flink job's committed output by tests/integration/test_cf_parity.py.

Only the per-user fold runs in Python (``groupBy(user).applyInPandas`` over the same
``apply_user_event`` the stream runs); sums, rankings and the scoring join are Spark
aggregations, window functions and joins. The outputs have the columns of the Flink job's
upsert records: ``item_id, neighbours`` and ``user_id, scores``, each list an
``array<struct<item_id string, score double>>`` best first. PySpark is imported inside the
functions, so ``rtrec.cf`` stays importable in the runtimes that do not have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtrec.batch.ingest import KAFKA_OFFSET, KAFKA_PARTITION, valid_events
from rtrec.cf.params import CfParams
from rtrec.cf.records import NEIGHBOURS, SCORE, SCORES
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, ITEM_ID, USER_ID

CF_EVENT_COLUMNS = (EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TS)  # CfEvent's fields
PARTNER_ID = "partner_id"
COOCCURRENCE = "cooccurrence"
NORM = "norm"
WEIGHT = "weight"
PARTNERS = "partners"
RANK = "rank"

# What the per-user fold emits, one long table: a user's additions to n(i) (item_id, value),
# to c(i, j) (item_id, partner_id, value), or a final profile weight a_h (user_id, item_id,
# value).
KIND = "kind"
VALUE = "value"
NORM_DELTA, PAIR_DELTA, PROFILE = "norm", "pair", "profile"
FOLD_SCHEMA = (
    f"{KIND} string, {USER_ID} string, {ITEM_ID} string, {PARTNER_ID} string, {VALUE} double"
)


@dataclass(frozen=True)
class CfTables:
    """The twin's results as DataFrames (lazy: nothing runs until one is read)."""

    neighbours: Any  # item_id, neighbours: the rtrec.item_neighbours records
    scores: Any  # user_id, scores: the rtrec.cf_scores records
    norms: Any  # item_id, norm: n(i)
    cooccurrence: Any  # item_id, partner_id, cooccurrence: c(i, j), both ways
    # item_id, partners: items with more than max_partners partners, which the stream prunes
    # (its results near them depend on arrival interleaving, docs/online_cf.md §4).
    capped: Any


def fold_users(events: Any, params: CfParams) -> Any:
    """Stage 1 over each user's ``events`` (CfEvent's fields, Kafka partition and offset) in
    (Kafka partition, offset) order: the user's row deltas summed per item and per (item,
    partner), and the profile of the user's final state, as rows of ``FOLD_SCHEMA``.
    Duplicates, late and zero-weight events are decided by ``apply_user_event`` itself, exactly
    as in the stream."""

    def fold(frame: Any) -> Any:
        # Imported on the worker: the function and its bound data are all it needs.
        import pandas as pd

        from rtrec.cf.history import CfEvent, UserState, apply_user_event, user_profile

        # applyInPandas gives no order within a group; arrival order is the Kafka order.
        frame = frame.sort_values([KAFKA_PARTITION, KAFKA_OFFSET])
        state = UserState()
        # Summed per user before the shuffle (a combiner): a user's events mostly pair the same
        # few items, so this cuts the rows Arrow and the shuffle carry several times over.
        norms: dict[str, float] = {}
        pairs: dict[tuple[str, str], float] = {}
        columns = (frame[c] for c in CF_EVENT_COLUMNS)
        for event_id, user_id, item_id, event_type, ts in zip(*columns, strict=True):
            event = CfEvent(event_id, user_id, item_id, event_type, int(ts))
            state, step = apply_user_event(state, event, params)
            for delta in step.row_deltas:
                norms[delta.item] = norms.get(delta.item, 0.0) + delta.norm_delta
                for partner, c in delta.pairs:
                    pairs[delta.item, partner] = pairs.get((delta.item, partner), 0.0) + c
        user = str(frame[USER_ID].iloc[0])
        # A user with no applied event has no profile.
        profile = user_profile(user, state, params).weights if state.clock is not None else ()
        strings = {
            KIND: [NORM_DELTA] * len(norms) + [PAIR_DELTA] * len(pairs) + [PROFILE] * len(profile),
            USER_ID: [None] * (len(norms) + len(pairs)) + [user] * len(profile),
            ITEM_ID: [*norms, *(i for i, _ in pairs), *(h for h, _ in profile)],
            PARTNER_ID: [None] * len(norms) + [j for _, j in pairs] + [None] * len(profile),
        }
        values = [*norms.values(), *pairs.values(), *(a for _, a in profile)]
        # Explicit dtypes: a user whose events all weigh 0 yields no row, and pandas would type
        # those empty columns float64, which Arrow cannot send as strings.
        return pd.DataFrame(
            {
                **{name: pd.Series(column, dtype=object) for name, column in strings.items()},
                VALUE: pd.Series(values, dtype="float64"),
            }
        )

    return events.groupBy(USER_ID).applyInPandas(fold, schema=FOLD_SCHEMA)


def build_cf_tables(bronze: Any, params: CfParams) -> CfTables:
    """Neighbours and scores from bronze rows (docs/online_cf.md §7); the fold is cached, since
    every output reads it."""
    from pyspark.sql import functions as F

    # Only the columns the fold reads cross to Python.
    events = valid_events(bronze).select(*CF_EVENT_COLUMNS, KAFKA_PARTITION, KAFKA_OFFSET)
    folded = fold_users(events, params).cache()
    norms = folded.where(F.col(KIND) == NORM_DELTA).groupBy(ITEM_ID).agg(F.sum(VALUE).alias(NORM))
    cooccurrence = (
        folded.where(F.col(KIND) == PAIR_DELTA)
        .groupBy(ITEM_ID, PARTNER_ID)
        .agg(F.sum(VALUE).alias(COOCCURRENCE))
    )
    top = top_neighbours(cooccurrence, norms, params.neighbours)
    profiles = folded.where(F.col(KIND) == PROFILE).select(
        USER_ID, ITEM_ID, F.col(VALUE).alias(WEIGHT)
    )
    capped = (
        cooccurrence.groupBy(ITEM_ID)
        .agg(F.count(PARTNER_ID).alias(PARTNERS))
        .where(F.col(PARTNERS) > params.max_partners)
    )
    return CfTables(
        neighbours=collect_ranked(top, ITEM_ID, PARTNER_ID, NEIGHBOURS),
        scores=collect_ranked(
            score_candidates(profiles, top, params.candidates), USER_ID, ITEM_ID, SCORES
        ),
        norms=norms,
        cooccurrence=cooccurrence,
        capped=capped,
    )


def top_neighbours(cooccurrence: Any, norms: Any, top: int) -> Any:
    """Per item, its ``top`` partners by sim = c / sqrt(n(item) n(partner)) descending, then
    partner id: rows (item_id, partner_id, score, rank)."""
    from pyspark.sql import functions as F

    partner_norms = norms.select(
        F.col(ITEM_ID).alias(PARTNER_ID), F.col(NORM).alias(f"{PARTNER_ID}_{NORM}")
    )
    # The same expression as rank_neighbours, so equal sums give bit-equal sims.
    sim = F.col(COOCCURRENCE) / F.sqrt(F.col(NORM) * F.col(f"{PARTNER_ID}_{NORM}"))
    scored = (
        cooccurrence.where(F.col(COOCCURRENCE) > 0.0)
        .join(norms, ITEM_ID)
        .join(partner_norms, PARTNER_ID)
        .select(ITEM_ID, PARTNER_ID, sim.alias(SCORE))
    )
    return _top(scored, ITEM_ID, PARTNER_ID, top)


def score_candidates(profiles: Any, top: Any, candidates: int) -> Any:
    """§6 per user: score(k) = sum over history items h of a_h * sim(h, k), k among h's top
    neighbours and not in the history; the top ``candidates``: rows (user_id, item_id, score,
    rank)."""
    from pyspark.sql import functions as F

    lists = top.select(
        F.col(ITEM_ID).alias("history_item"), F.col(PARTNER_ID).alias(ITEM_ID), F.col(SCORE)
    )
    held = profiles.select(USER_ID, ITEM_ID)
    contributions = (
        profiles.select(USER_ID, F.col(ITEM_ID).alias("history_item"), WEIGHT)
        .join(lists, "history_item")
        .join(held, [USER_ID, ITEM_ID], "left_anti")
    )
    totals = contributions.groupBy(USER_ID, ITEM_ID).agg(
        F.sum(F.col(WEIGHT) * F.col(SCORE)).alias(SCORE)
    )
    return _top(totals, USER_ID, ITEM_ID, candidates)


def collect_ranked(ranked: Any, key: str, member: str, column: str) -> Any:
    """Rows (key, member, score, rank) -> one row per key: ``column`` = the members as
    ``array<struct<item_id, score>>`` in rank order."""
    from pyspark.sql import functions as F

    entries = F.array_sort(F.collect_list(F.struct(RANK, F.col(member).alias(ITEM_ID), SCORE)))
    pairs = F.transform(
        entries, lambda e: F.struct(e[ITEM_ID].alias(ITEM_ID), e[SCORE].alias(SCORE))
    )
    return ranked.groupBy(key).agg(pairs.alias(column))


def _top(scored: Any, key: str, member: str, top: int) -> Any:
    # Best first, ties by id: the order of rtrec.cf.similarity.best_first.
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(key).orderBy(F.col(SCORE).desc(), F.col(member).asc())
    return scored.withColumn(RANK, F.row_number().over(order)).where(F.col(RANK) <= top)
