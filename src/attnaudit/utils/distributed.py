"""Several processes under torchrun (PyTorch's launcher): who am I, and a way to agree.

``torchrun --nproc-per-node N -m attnaudit.cli audit RUN`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. The audit shards its resumable chunks across ranks and
rank 0 merges them (see :func:`attnaudit.erasure.audit.audit_run`). Nothing here is used when the
command runs alone. Backend: NCCL when each rank has a GPU, gloo otherwise (CPU, and CI's test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones (rank 0 of 1 when run alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """Each rank on its own GPU: ``cuda`` becomes ``cuda:LOCAL_RANK``; CPU stays CPU."""
        return f"cuda:{self.local_rank}" if requested == "cuda" and self.size > 1 else requested

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def is_main_process() -> bool:
    """Whether this process is rank 0 of a torchrun launch, or runs alone (no process group is
    joined: the launcher's ``RANK`` says it)."""
    return int(os.environ.get("RANK", "0")) == 0


def world(device: str = "cpu") -> World:
    """The launched world, joining its process group on first use (None of this when run alone)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    here = World(rank=int(os.environ["RANK"]), size=size,
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(here.local_rank)
        dist.init_process_group(backend=backend)
    return here
