"""The one training function of the sequential model, and scoring for evaluation.

``train_sasrec`` runs as one process or as one rank of many: when ``torch.distributed`` is
initialised (TorchDistributor and Horovod's Spark runner both start the ranks), each rank takes
its share of every global batch and DDP averages the gradients, so the update equals the one of
a single process on the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from rtrec.models.sasrec import SasRec, SasRecConfig
from rtrec.models.train import Loss, SasRecTrain, SequenceBatch
from rtrec.training.data import left_pad, windows

Collective = Literal["torch", "horovod"]


@dataclass(frozen=True)
class TrainConfig:
    max_len: int = 50
    dim: int = 64
    heads: int = 2
    blocks: int = 2
    dropout: float = 0.2
    loss: Loss = "full"
    negatives: int = 100
    epochs: int = 30
    batch_size: int = 128  # global: the ranks share it
    lr: float = 1e-3
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    model: SasRec
    windows: int
    seconds: float
    final_loss: float

    @property
    def windows_per_second(self) -> float:
        return self.windows * 1.0 / self.seconds if self.seconds else float("nan")


def train_sasrec(
    sequences: Sequence[Sequence[int]],
    categories: Sequence[int],
    price_buckets: Sequence[int],
    config: TrainConfig,
    device: str = "cpu",
    collective: Collective = "torch",
) -> TrainResult:
    """Train on next-item windows of ``sequences`` (vocabulary indices); ``categories`` and
    ``price_buckets`` hold one side-feature index per vocabulary item. ``device``: "cpu", or
    this rank's GPU ("cuda:<local rank>"). ``collective`` averages the gradients of the ranks:
    "torch" (DDP, when torch.distributed is initialised; otherwise one process) or "horovod"
    (Horovod's DistributedOptimizer, after ``hvd.init()``). The returned model is on the CPU."""
    rank, world = _rank_and_world(collective)
    torch.manual_seed(config.seed)  # every rank starts from the same weights
    model_config = SasRecConfig(
        n_items=len(categories),
        n_categories=max(categories) + 1,
        n_price_buckets=max(price_buckets) + 1,
        max_len=config.max_len,
        dim=config.dim,
        heads=config.heads,
        blocks=config.blocks,
        dropout=config.dropout,
    )
    model = SasRec(model_config, torch.tensor(categories), torch.tensor(price_buckets))
    model.to(device)
    trainer: torch.nn.Module = SasRecTrain(model, config.loss, config.negatives)
    optimiser = torch.optim.Adam(trainer.parameters(), lr=config.lr)
    if world > 1 and collective == "torch":
        on_gpu = device.startswith("cuda")
        trainer = torch.nn.parallel.DistributedDataParallel(
            trainer, device_ids=[torch.device(device).index] if on_gpu else None
        )
        optimiser = torch.optim.Adam(trainer.parameters(), lr=config.lr)
    elif world > 1:
        import horovod.torch as hvd

        hvd.broadcast_parameters(trainer.state_dict(), root_rank=0)
        optimiser = hvd.DistributedOptimizer(
            optimiser, named_parameters=trainer.named_parameters(), op=hvd.Average
        )
    inputs, targets = windows(sequences, config.max_len)
    x, y = torch.tensor(inputs), torch.tensor(targets)
    order_rng = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    loss = torch.tensor(float("nan"))
    seen = 0
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=order_rng)  # the same order on every rank
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) < world:  # every rank skips it alike, so none waits in all-reduce
                continue
            mine = batch[rank::world]
            optimiser.zero_grad()
            loss = trainer(SequenceBatch(x[mine], y[mine]).to(device))
            loss.backward()
            optimiser.step()
            seen += len(mine)
    seconds = time.perf_counter() - started
    return TrainResult(model.cpu().eval(), seen, seconds, float(loss.detach()))


def _rank_and_world(collective: Collective) -> tuple[int, int]:
    if collective == "horovod":
        import horovod.torch as hvd

        return int(hvd.rank()), int(hvd.size())
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def score_histories(
    model: SasRec, histories: Sequence[Sequence[int]], batch_size: int = 256
) -> np.ndarray:
    """(examples, n_items) scores of every vocabulary item after each history."""
    rows = left_pad(histories, model.config.max_len)
    vectors = model.item_vectors().detach()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            hidden = model.last_hidden(torch.tensor(rows[start : start + batch_size]))
            out.append(model.scores(hidden, vectors).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_items))
