"""SASRec-family sequential recommender: causal self-attention over a user's recent items
(Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018), with item side
features in the item representation.

Architecture only: ``SasRec`` maps an item sequence to one hidden state per position and scores
items against those states; ``rtrec.models.train.SasRecTrain`` owns the loss.

Item indices: 0 pads, 1 is the unknown item (an id outside the training vocabulary), known
items start at 2. An item is its id embedding plus the embeddings of its category and price
bucket, so an item never seen in training (index 1, or a row added later) is still represented
by its side features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rtrec.models.vocabulary import FIRST_ITEM, PAD


@dataclass(frozen=True)
class SasRecConfig:
    n_items: int  # vocabulary size, PAD and UNKNOWN included
    n_categories: int  # category 0 is "none"
    n_price_buckets: int  # bucket 0 is "none"
    max_len: int = 50
    dim: int = 64
    heads: int = 2
    blocks: int = 2
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.n_items <= FIRST_ITEM:
            raise ValueError("n_items must leave room for PAD, UNKNOWN and at least one item")
        if self.dim % self.heads:
            raise ValueError("dim must be a multiple of heads")


class SasRec(nn.Module):  # type: ignore[misc]
    """Hidden states of item sequences, and scores of every catalogue item from them."""

    def __init__(self, config: SasRecConfig, categories: Tensor, price_buckets: Tensor) -> None:
        """``categories`` and ``price_buckets``: one index per vocabulary item (buffers, saved
        with the module, so serving needs nothing else to represent the catalogue)."""
        super().__init__()
        if categories.shape != (config.n_items,) or price_buckets.shape != (config.n_items,):
            raise ValueError("one category and one price bucket per vocabulary item")
        self.config = config
        self.register_buffer("categories", categories.long())
        self.register_buffer("price_buckets", price_buckets.long())
        self.item_ids = nn.Embedding(config.n_items, config.dim, padding_idx=PAD)
        self.category = nn.Embedding(config.n_categories, config.dim, padding_idx=0)
        self.price = nn.Embedding(config.n_price_buckets, config.dim, padding_idx=0)
        self.position = nn.Embedding(config.max_len, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=config.dim,
            nhead=config.heads,
            dim_feedforward=config.dim,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        # Small embeddings: with N(0, 1) the dot products start near +-100 and the softmax
        # saturates. Padding rows stay zero.
        for table in (self.item_ids, self.category, self.price, self.position):
            nn.init.normal_(table.weight, std=config.dim**-0.5)
            if table.padding_idx is not None:
                with torch.no_grad():
                    table.weight[table.padding_idx].zero_()

    def represent(self, items: Tensor, categories: Tensor, price_buckets: Tensor) -> Tensor:
        """Item vectors from item indices and side features (any shapes, broadcast alike)."""
        # Padding stays exactly zero: every part of it uses its padding row.
        return self.item_ids(items) + self.category(categories) + self.price(price_buckets)

    def item_vectors(self) -> Tensor:
        """(n_items, dim): every vocabulary item, PAD's row zero."""
        items = torch.arange(self.config.n_items, device=self.categories.device)
        return self.represent(items, self.categories, self.price_buckets)

    def forward(self, sequences: Tensor) -> Tensor:
        """(batch, length) item indices, left-padded with PAD, length <= max_len ->
        (batch, length, dim) hidden states; position t sees items 0..t only."""
        length = sequences.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequences longer than max_len={self.config.max_len}")
        items = self.represent(
            sequences, self.categories[sequences], self.price_buckets[sequences]
        ) * (self.config.dim**0.5)
        positions = torch.arange(length, device=sequences.device)
        hidden = self.dropout(items + self.position(positions)[None, :, :])
        padding = sequences == PAD
        hidden = hidden * (~padding)[..., None]
        hidden = self.blocks(hidden, mask=self._attention_mask(padding))
        normalised: Tensor = self.norm(hidden)
        return normalised

    def _attention_mask(self, padding: Tensor) -> Tensor:
        """(batch * heads, length, length), True where attention is blocked: later positions
        and padding. Every position may see itself, so no row is fully blocked (a fully blocked
        row would give NaN); a padded position's output is never read."""
        length = padding.shape[1]
        ones = torch.ones(length, length, dtype=torch.bool, device=padding.device)
        blocked = torch.triu(ones, diagonal=1)[None, :, :] | padding[:, None, :]
        blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=padding.device)
        return blocked.repeat_interleave(self.config.heads, dim=0)

    def scores(self, hidden: Tensor, item_vectors: Tensor | None = None) -> Tensor:
        """(..., dim) hidden states -> (..., n_items) scores: the dot product with each item."""
        vectors = self.item_vectors() if item_vectors is None else item_vectors
        logits: Tensor = hidden @ vectors.T
        return logits

    def last_hidden(self, sequences: Tensor) -> Tensor:
        """(batch, dim): the state after each sequence's last item (sequences are left-padded,
        so that is the last position)."""
        last: Tensor = self.forward(sequences)[:, -1, :]
        return last


def describe(model: SasRec) -> dict[str, Any]:
    """The parameters to log with a run."""
    config = model.config
    return {
        "model": "sasrec",
        "n_items": config.n_items,
        "max_len": config.max_len,
        "dim": config.dim,
        "heads": config.heads,
        "blocks": config.blocks,
        "dropout": config.dropout,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
