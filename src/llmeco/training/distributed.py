"""Several processes, one run: torchrun launch, DDP or FSDP wrapping, and whole-model state.

Data parallelism here is deliberately simple and exact: every process draws the same global
batch from the same seeded stream and trains on its share ``examples[rank::world]``; the loss
of each share is divided by the target tokens of the *whole* global batch (and multiplied by
``world``, since DDP averages gradients), so N processes take the same optimizer step as one
process with the same global batch (up to float summation order).

* ``ddp`` — :class:`~torch.nn.parallel.DistributedDataParallel`; gloo on CPU, nccl on CUDA.
* ``fsdp`` — FSDP2 ``fully_shard`` on every decoder layer and the root (parameters, gradients
  and optimizer state sharded). Whole-model state for checkpoints and the final save goes
  through ``torch.distributed.checkpoint.state_dict`` with ``full_state_dict=True``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist

from llmeco.errors import ConfigError

Strategy = Literal["ddp", "fsdp"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows progress and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world > 1


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun set up (env ``WORLD_SIZE`` > 1); else a single process.

    gloo on CPU, nccl on CUDA (each process takes GPU ``LOCAL_RANK``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank=rank, world=world, local_rank=local_rank)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for one process)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: Any, ctx: DistContext, strategy: Strategy, device: torch.device) -> Any:
    """The module the training step calls: ``model`` itself, DDP around it, or FSDP-sharded.

    FSDP shards in place (``model`` becomes the sharded module), so create the optimizer
    after this call.
    """
    if not ctx.enabled:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else ctx.local_rank]
        return DistributedDataParallel(model, device_ids=ids if device.type == "cuda" else None)
    from torch.distributed.fsdp import fully_shard

    for module in model.modules():
        if type(module).__name__.endswith("DecoderLayer"):
            fully_shard(module)
    fully_shard(model)
    return model


@contextlib.contextmanager
def gradient_sync(wrapped: Any, ctx: DistContext, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if not ctx.enabled or enabled:
        yield
        return
    if hasattr(wrapped, "no_sync"):  # DDP
        with wrapped.no_sync():
            yield
    elif hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        yield


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum of ``value`` (a tensor on this process's device) over all processes."""
    if not ctx.enabled:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for one)."""
    if ctx.enabled:
        dist.barrier()


def shard(examples: Sequence[Any], ctx: DistContext) -> list[Any]:
    """This process's share of a global batch: every ``world``-th example from ``rank``."""
    return list(examples[ctx.rank :: ctx.world])


def model_state(model: Any, strategy: Strategy, ctx: DistContext) -> dict[str, torch.Tensor]:
    """The whole model's state dict on CPU (a collective under FSDP: call on every rank)."""
    if ctx.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_model_state(
    model: Any, state: dict[str, torch.Tensor], strategy: Strategy, ctx: DistContext
) -> tuple[list[str], list[str]]:
    """Load a whole or partial state dict; return (missing, unexpected) keys."""
    if ctx.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, strict=False)
        result = set_model_state_dict(model, dict(state), options=options)
        return list(result.missing_keys), list(result.unexpected_keys)
    result = model.load_state_dict(state, strict=False)
    return list(result.missing_keys), list(result.unexpected_keys)


def optimizer_state(model: Any, optimizer: Any, strategy: Strategy, ctx: DistContext) -> Any:
    """The optimizer's whole state (a collective under FSDP: call on every rank)."""
    if ctx.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer, options=options)
    return optimizer.state_dict()


def load_optimizer_state(
    model: Any, optimizer: Any, state: Any, strategy: Strategy, ctx: DistContext
) -> None:
    """Restore what :func:`optimizer_state` returned."""
    if ctx.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, optimizer, state, options=options)
        return
    optimizer.load_state_dict(state)


def in_torchrun() -> bool:
    """Whether this process was started by torchrun (it sets ``LOCAL_RANK``)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def env_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def launch(nproc: int, task: str, args: Sequence[str]) -> int:
    """Run ``llmeco train TASK ARGS`` in ``nproc`` processes with torchrun; return its code.

    torchrun (``torch.distributed.run --standalone``) starts the workers, each running the
    same ``llmeco train`` command (``python -m llmeco train TASK ARGS``), and stops them all
    if one fails.

    Raises:
        ConfigError: ``nproc`` below 1, or more processes than GPUs on CUDA.
    """
    if nproc < 1:
        raise ConfigError("--nproc must be at least 1")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {nproc} but only {torch.cuda.device_count()} GPU(s); use at most that many"
        )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "llmeco",
        "train",
        task,
        *args,
    ]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(command, env=env)
