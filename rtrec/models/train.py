"""The training wrapper of ``SasRec``: it owns the next-item loss, the module stays architecture.

``SequenceBatch`` is the one data -> model contract: left-padded input sequences and, at each
position, the item that came next (PAD where there is none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtrec.models.sasrec import SasRec
from rtrec.models.vocabulary import FIRST_ITEM, PAD

Loss = Literal["full", "sampled"]


@dataclass(frozen=True)
class SequenceBatch:
    sequences: Tensor  # (batch, length) item indices, left-padded with PAD
    targets: Tensor  # (batch, length) the next item at each position, PAD: no target

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(self.sequences.to(device), self.targets.to(device))


class SasRecTrain(nn.Module):  # type: ignore[misc]
    """Next-item cross-entropy at every position that has a target.

    ``full``: softmax over the whole catalogue (exact; cost grows with the catalogue).
    ``sampled``: the target against ``negatives`` items drawn uniformly per batch, shared by
    every position (cheaper on large catalogues; a drawn negative equal to the target is
    masked out).
    """

    def __init__(self, model: SasRec, loss: Loss = "full", negatives: int = 100) -> None:
        super().__init__()
        if loss not in ("full", "sampled"):
            raise ValueError(f"loss must be 'full' or 'sampled', not {loss!r}")
        self.model = model
        self.loss_kind: Loss = loss
        self.negatives = negatives

    def forward(self, batch: SequenceBatch) -> Tensor:
        hidden = self.model(batch.sequences)
        has_target = batch.targets != PAD
        hidden, targets = hidden[has_target], batch.targets[has_target]
        vectors = self.model.item_vectors()
        if self.loss_kind == "full":
            logits = self.model.scores(hidden, vectors)
            logits[:, PAD] = float("-inf")  # padding is never an answer
            return F.cross_entropy(logits, targets)
        drawn = torch.randint(
            FIRST_ITEM, self.model.config.n_items, (self.negatives,), device=targets.device
        )
        positive = (hidden * vectors[targets]).sum(dim=-1, keepdim=True)
        negative = hidden @ vectors[drawn].T
        negative = negative.masked_fill(drawn[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([positive, negative], dim=1)
        # The target sits in column 0 of every row.
        return F.cross_entropy(logits, torch.zeros_like(targets))
