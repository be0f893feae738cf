"""Baselines scored side by side with the deep model, on the same split and the same metrics
(``rtrec.training.metrics``): one score per catalogue item for each evaluation example.

Item indices are the model's vocabulary (0 pads, 1 is the unknown item): both are never scored.
Training data is each user's item sequence in time order, with the event times alongside where
a baseline needs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import sparse

from rtrec.models.vocabulary import FIRST_ITEM

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


def same_for_all(vector: Vector, examples: int) -> Matrix:
    """One score vector (popularity) as the score matrix of ``examples`` examples."""
    return np.tile(vector, (examples, 1))
