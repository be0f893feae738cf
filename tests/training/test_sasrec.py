"""SASRec architecture and its training wrapper (torch, CPU), on tiny hand-made data."""

from __future__ import annotations

import pytest
import torch

from rtrec.models.sasrec import SasRec, SasRecConfig
from rtrec.models.train import SasRecTrain, SequenceBatch
from rtrec.models.vocabulary import FIRST_ITEM, PAD, UNKNOWN

pytestmark = pytest.mark.unit

N_ITEMS = 12  # PAD, UNKNOWN and ten items
CATEGORIES = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3])
BUCKETS = torch.tensor([0, 0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1])


def model(**overrides: object) -> SasRec:
    torch.manual_seed(0)
    config = SasRecConfig(
        n_items=N_ITEMS, n_categories=4, n_price_buckets=4, max_len=6, dim=16, **overrides
    )
    return SasRec(config, CATEGORIES, BUCKETS)


def test_a_position_sees_only_its_past() -> None:
    sasrec = model().eval()
    sequences = torch.tensor([[PAD, 2, 3, 4, 5, 6]])
    changed = sequences.clone()
    changed[0, 4] = 9  # a later item
    with torch.no_grad():
        before, after = sasrec(sequences), sasrec(changed)
    assert before.shape == (1, 6, 16)
    assert torch.allclose(before[0, :4], after[0, :4], atol=1e-6)
    assert not torch.allclose(before[0, 4:], after[0, 4:])
    assert torch.isfinite(before).all()  # the fully padded position is not NaN
    assert sasrec.scores(before[:, -1]).shape == (1, N_ITEMS)


def test_an_unseen_item_is_represented_by_its_side_features() -> None:
    sasrec = model()
    with torch.no_grad():
        vectors = sasrec.item_vectors()
        assert torch.count_nonzero(vectors[PAD]) == 0
        unseen = sasrec.represent(
            torch.tensor([UNKNOWN, UNKNOWN]), torch.tensor([1, 3]), torch.tensor([2, 2])
        )
    # Same unknown id, different categories: different vectors, each the id vector plus its
    # category and price embeddings.
    assert not torch.allclose(unseen[0], unseen[1])
    expected = sasrec.item_ids.weight[UNKNOWN] + sasrec.category.weight[1] + sasrec.price.weight[2]
    assert torch.allclose(unseen[0], expected)


def cycle_batch(users: int = 32, length: int = 6) -> SequenceBatch:
    """Every user walks the ten items in one fixed cycle from a random start."""
    torch.manual_seed(1)
    starts = torch.randint(0, 10, (users, 1))
    walk = (starts + torch.arange(length + 1)) % 10 + FIRST_ITEM
    return SequenceBatch(walk[:, :-1], walk[:, 1:])


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_training_learns_a_planted_cycle(loss: str) -> None:
    sasrec = model(dropout=0.0)
    trainer = SasRecTrain(sasrec, loss=loss, negatives=5)  # type: ignore[arg-type]
    optimiser = torch.optim.Adam(trainer.parameters(), lr=0.01)
    batch = cycle_batch()
    with torch.no_grad():
        first = float(trainer(batch))
    for _ in range(150):
        optimiser.zero_grad()
        trainer(batch).backward()
        optimiser.step()
    with torch.no_grad():
        assert float(trainer(batch)) < first / 4
    sasrec.eval()
    with torch.no_grad():
        scores = sasrec.scores(sasrec.last_hidden(batch.sequences))
    scores[:, PAD] = float("-inf")
    predicted = scores.argmax(dim=1)
    assert (predicted == batch.targets[:, -1]).float().mean() >= 0.9
