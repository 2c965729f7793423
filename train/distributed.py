"""Distributed set-up for torchrun, and the cross-rank gather the contrastive loss uses.

    torchrun --nproc-per-node 8 -m vlsa.cli train ...         # one machine, 8 GPUs
    torchrun --nnodes 2 --node-rank R --master-addr HOST ...  # several machines

Only rank 0 writes checkpoints, logs and progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Read torchrun's environment; start the process group if there is more than one rank.
    NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, dev)


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows (equal batch sizes), gradients flowing back to their owners through the
    gather's reduce-scatter; plus the offset of this rank's rows. Identity on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    import torch.distributed.nn.functional as dist_fn

    joined = torch.cat(dist_fn.all_gather(x.contiguous()), dim=0)
    if joined.requires_grad:
        # The gather's backward hands each rank's slice of this gradient to gloo as it is, and
        # gloo reads a strided gradient (an einsum's, say) as if it were dense: wrong gradients.
        joined.register_hook(lambda grad: grad.contiguous())
    return joined, dist.get_rank() * x.shape[0]


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel; the ablations leave parts of the model unused (the decoder, the
    matching head, a projection), and DDP must then be told, or the bucket holding them is never
    reduced."""
    from torch.nn.parallel import DistributedDataParallel

    loss = model.config.loss
    complete = loss.masked_modelling and loss.matching == "audio" and loss.matching_head
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=not complete)
