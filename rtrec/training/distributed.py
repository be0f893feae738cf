"""The one training function (``train_sasrec``) run by two distributed backends: Spark's
``TorchDistributor`` and Horovod's Spark runner (``horovod.spark.run``).

Each rank joins its backend's collective (torch.distributed with gloo on CPU or NCCL with
``use_gpu``; Horovod over gloo), runs ``train_sasrec`` on its share of every batch, and returns
the weights (the same on every rank); the driver rebuilds the model from one rank's answer.
Everything a rank needs travels as plain, picklable arguments.
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
    """What a rank sends back to the driver."""

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
) -> RankOutput:
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
        # Every rank answers: TorchDistributor hands back one rank's return value, not always
        # rank 0's, and synchronous training leaves the same weights on every rank.
        return _rank_output(result, int(windows.item()))
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
    from pyspark.ml.torch.distributor import TorchDistributor

    distributor = TorchDistributor(num_processes=processes, local_mode=local_mode, use_gpu=use_gpu)
    output = distributor.run(
        train_on_rank,
        list(map(list, sequences)),
        list(categories),
        list(price_buckets),
        config,
        use_gpu,
    )
    return _rebuild([output], categories, price_buckets, "TorchDistributor")


def _rank_output(result: TrainResult, windows: int) -> RankOutput:
    """What a rank sends back: its (CPU) weights and the run's figures; ``windows`` counts
    every rank's."""
    model = result.model
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return RankOutput(state, model.config, windows, result.seconds, result.final_loss)


def _rebuild(
    outputs: list[Any], categories: Sequence[int], price_buckets: Sequence[int], backend: str
) -> TrainResult:
    """The model from one rank's output."""
    import torch

    from rtrec.models.sasrec import SasRec

    found = [o for o in outputs if isinstance(o, RankOutput)]
    if len(found) != 1:
        raise RtrecError(f"{backend} returned {outputs!r:.200}, not a rank's output")
    output = found[0]
    model = SasRec(
        output.model_config, torch.tensor(list(categories)), torch.tensor(list(price_buckets))
    )
    model.load_state_dict(output.state)
    return TrainResult(model.eval(), output.windows, output.seconds, output.final_loss)


def horovod_rank(
    sequences: Sequence[Sequence[int]],
    categories: Sequence[int],
    price_buckets: Sequence[int],
    config: TrainConfig,
) -> RankOutput:
    """One rank's part under Horovod (CPU; Horovod sets the rank and size)."""
    import horovod.torch as hvd
    import torch

    from rtrec.training.loop import train_sasrec

    hvd.init()
    try:
        result = train_sasrec(sequences, categories, price_buckets, config, collective="horovod")
        windows = hvd.allreduce(torch.tensor([result.windows]), op=hvd.Sum)
        return _rank_output(result, int(windows.item()))  # the same weights on every rank
    finally:
        hvd.shutdown()


def train_with_horovod(
    sequences: Sequence[Sequence[int]],
    categories: Sequence[int],
    price_buckets: Sequence[int],
    config: TrainConfig,
    processes: int = 2,
) -> TrainResult:
    """Train with ``processes`` ranks as Spark tasks through ``horovod.spark.run`` over gloo
    (needs an active Spark session with that many task slots)."""
    import horovod.spark

    outputs = horovod.spark.run(
        horovod_rank,
        args=(list(map(list, sequences)), list(categories), list(price_buckets), config),
        num_proc=processes,
        use_gloo=True,
        use_mpi=False,
        verbose=0,
    )
    return _rebuild(list(outputs)[:1], categories, price_buckets, "Horovod")
