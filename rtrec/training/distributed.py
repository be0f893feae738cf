"""The training function run by a distributed backend: Spark's ``TorchDistributor`` here
(Horovod's Spark runner is the second backend).

Each rank joins the process group (gloo on CPU, NCCL with ``use_gpu``), runs
``train_sasrec`` on its share of every batch, and rank 0 returns the weights; the driver
rebuilds the model from them. Everything a rank needs travels as plain, picklable arguments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtrec.errors import RtrecError
from rtrec.training.loop import TrainConfig, TrainResult


@dataclass(frozen=True)
class RankOutput:
    """What rank 0 sends back to the driver."""

    state: dict[str, Any]
    model_config: Any  # rtrec.models.sasrec.SasRecConfig
    windows: int  # windows all ranks trained on
    seconds: float
    final_loss: float


def train_on_rank(
    sequences: Sequence[Sequence[int]],
    categories: Sequence[int],
    price_buckets: Sequence[int],
    config: TrainConfig,
    use_gpu: bool,
) -> RankOutput | None:
    """One rank's part: the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...) is the backend's."""
    import torch
    import torch.distributed as dist

    from rtrec.training.loop import train_sasrec

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if use_gpu else "cpu"
    if use_gpu:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_gpu else "gloo")
    try:
        result = train_sasrec(sequences, categories, price_buckets, config, device=device)
        windows = torch.tensor([result.windows])
        dist.all_reduce(windows)  # windows of every rank: the examples/s of the whole run
        if dist.get_rank() != 0:
            return None
        model = result.model
        return RankOutput(
            {k: v.cpu() for k, v in model.state_dict().items()},
            model.config,
            int(windows.item()),
            result.seconds,
            result.final_loss,
        )
    finally:
        dist.destroy_process_group()


def train_with_torch_distributor(
    sequences: Sequence[Sequence[int]],
    categories: Sequence[int],
    price_buckets: Sequence[int],
    config: TrainConfig,
    processes: int = 2,
    local_mode: bool = True,
    use_gpu: bool = False,
) -> TrainResult:
    """Train with ``processes`` ranks through TorchDistributor (needs an active Spark session;
    ``local_mode`` runs the ranks on the driver, otherwise as barrier tasks on executors)."""
    import torch
    from pyspark.ml.torch.distributor import TorchDistributor

    from rtrec.models.sasrec import SasRec

    distributor = TorchDistributor(num_processes=processes, local_mode=local_mode, use_gpu=use_gpu)
    output = distributor.run(
        train_on_rank,
        list(map(list, sequences)),
        list(categories),
        list(price_buckets),
        config,
        use_gpu,
    )
    if not isinstance(output, RankOutput):
        raise RtrecError(f"TorchDistributor returned {type(output).__name__}, not rank 0's output")
    model = SasRec(
        output.model_config, torch.tensor(list(categories)), torch.tensor(list(price_buckets))
    )
    model.load_state_dict(output.state)
    return TrainResult(model.eval(), output.windows, output.seconds, output.final_loss)
