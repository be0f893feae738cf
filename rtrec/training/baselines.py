"""Baselines scored side by side with the deep model, on the same split and the same metrics
(``rtrec.training.metrics``): one score per catalogue item for each evaluation example.

Item indices are the model's vocabulary (0 pads, 1 is the unknown item): both are never scored.
Training data is each user's item sequence in time order, with the event times alongside where
a baseline needs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import sparse

from rtrec.cf.history import CfEvent, UserState, apply_user_event, user_profile
from rtrec.cf.params import CfParams
from rtrec.cf.reference import compute_reference
from rtrec.cf.scores import score_candidates
from rtrec.models.vocabulary import FIRST_ITEM

if TYPE_CHECKING:
    from rtrec.training.data import Split, Step

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]


def popularity(sequences: Sequence[Sequence[int]], n_items: int) -> Vector:
    """How often each item occurs in training."""
    counts = np.zeros(n_items)
    for sequence in sequences:
        np.add.at(counts, np.asarray(sequence, dtype=np.int64), 1.0)
    counts[:FIRST_ITEM] = 0.0
    return counts


def recent_popularity(
    sequences: Sequence[Sequence[int]],
    times_ms: Sequence[Sequence[int]],
    n_items: int,
    as_of_ms: int,
    half_life_ms: int,
) -> Vector:
    """Occurrences weighted by ½^(age / half-life) at ``as_of_ms`` (the split time): what is
    popular now rather than over the whole history."""
    counts = np.zeros(n_items)
    for sequence, times in zip(sequences, times_ms, strict=True):
        ages = (as_of_ms - np.asarray(times, dtype=np.float64)) / half_life_ms
        np.add.at(counts, np.asarray(sequence, dtype=np.int64), np.power(0.5, ages))
    counts[:FIRST_ITEM] = 0.0
    return counts


def item_cosine(sequences: Sequence[Sequence[int]], n_items: int, window: int) -> sparse.csr_array:
    """Item-item cosine over co-occurrence: two items co-occur once each time they are at most
    ``window`` positions apart in one user's sequence (a repeated item pairs with itself only
    through the norm). Symmetric, zero diagonal."""
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    for sequence in sequences:
        items = np.asarray(sequence, dtype=np.int64)
        for gap in range(1, min(window, len(items) - 1) + 1):
            rows.append(items[:-gap])
            cols.append(items[gap:])
    if rows:
        a, b = np.concatenate(rows), np.concatenate(cols)
        keep = a != b
        a, b = a[keep], b[keep]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    pairs = sparse.coo_array(
        (np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))),
        shape=(n_items, n_items),
    ).tocsr()
    norms = np.sqrt(np.asarray(pairs.multiply(pairs).sum(axis=1)).ravel())
    norms[norms == 0.0] = 1.0
    scale = sparse.diags_array(1.0 / norms)
    cosine: sparse.csr_array = (scale @ pairs @ scale).tocsr()
    return cosine


def knn_scores(similarity: sparse.csr_array, histories: Sequence[Sequence[int]]) -> Matrix:
    """score(k) = Σ over the example's history items h (each once) of sim(h, k)."""
    n_items = similarity.shape[0]
    users = sparse.lil_array((len(histories), n_items))
    for row, history in enumerate(histories):
        for item in set(history):
            if item >= FIRST_ITEM:
                users[row, item] = 1.0
    scores: Matrix = (users.tocsr() @ similarity).toarray()
    scores[:, :FIRST_ITEM] = 0.0
    return scores


def history_matrix(histories: Sequence[Sequence[int]], n_items: int) -> sparse.csr_array:
    """(rows, items) counts of each item in each history (float32, as ALS solves in)."""
    lengths = [len(h) for h in histories]
    rows = np.repeat(np.arange(len(histories)), lengths)
    columns = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=sum(lengths))
    counts = sparse.coo_array(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(histories), n_items)
    ).tocsr()
    counts.sum_duplicates()
    return counts


def als_scores(
    sequences: Sequence[Sequence[int]],
    histories: Sequence[Sequence[int]],
    n_items: int,
    # The strongest setting of a grid on the simulator's split (factors 16-128, regularization
    # 0.01-1, alpha 1-20): a baseline tuned on the evaluation data is, if anything, flattered.
    factors: int = 16,
    regularization: float = 1.0,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
) -> Matrix:
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008, as the ``implicit`` package solves it):
    item factors from the training users' interaction counts (confidence 1 + alpha x count);
    each example's user factors are solved from its own history against the fixed item factors
    (fold-in), so users who appear only after the split are scored like everyone else."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises itself; a multi-threaded BLAS underneath it only oversubscribes
    # (its constructor warns unless BLAS is single-threaded). It wants scipy's csr_matrix.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
        )
        model.fit(sparse.csr_matrix(history_matrix(sequences, n_items)), show_progress=False)
        users = model.recalculate_user(
            np.arange(len(histories)), sparse.csr_matrix(history_matrix(histories, n_items))
        )
    scores: Matrix = (users @ model.item_factors.T).astype(np.float64)
    scores[:, :FIRST_ITEM] = 0.0
    return scores


def online_cf_scores(steps: Mapping[str, Sequence[Step]], split: Split, params: CfParams) -> Matrix:
    """The scores the streaming online CF (``rtrec.cf``) publishes for the user just before
    each target: neighbours from the training period (its batch definition, folded over every
    step before the split, each step as an event of its type), and the user's profile from its
    own steps up to the target. Only the top ``params.candidates`` are scored (the stream
    publishes no more), and never an item in the user's history: CF recommends discovery."""
    events = [
        CfEvent(f"{user}/{n}", user, step.item, step.event_type, step.ts)
        for user, user_steps in steps.items()
        for n, step in enumerate(user_steps)
        if step.ts < split.split_ts
    ]
    neighbours = compute_reference(events, params).neighbours
    scores = np.zeros((len(split.examples), len(split.vocabulary)))
    # Examples come user by user with growing positions: fold each user's steps once.
    user, state, applied = "", UserState(), 0
    for row, (example_user, position) in enumerate(split.examples):
        if example_user != user:
            user, state, applied = example_user, UserState(), 0
        for n in range(applied, position):
            step = steps[user][n]
            state, _ = apply_user_event(
                state, CfEvent(f"{user}/{n}", user, step.item, step.event_type, step.ts), params
            )
        applied = position
        ranked = score_candidates(user_profile(user, state, params), neighbours, params.candidates)
        for item, score in ranked:
            index = split.vocabulary.index(item)
            if index >= FIRST_ITEM:
                scores[row, index] = score
    return scores


def same_for_all(vector: Vector, examples: int) -> Matrix:
    """One score vector (popularity) as the score matrix of ``examples`` examples."""
    return np.tile(vector, (examples, 1))
