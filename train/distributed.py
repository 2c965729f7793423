"""The cross-rank gather the contrastive loss uses, and DDP; the process-group set-up itself
(DistInfo, init_distributed, cleanup) lives in vlsa/distributed.py, shared with the indexer.

    torchrun --nproc-per-node 8 -m vlsa.cli train ...         # one machine, 8 GPUs
    torchrun --nnodes 2 --node-rank R --master-addr HOST ...  # several machines

Only rank 0 writes checkpoints, logs and progress.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


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


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel; the ablations leave parts of the model unused (the decoder, the
    matching head, a projection), and DDP must then be told, or the bucket holding them is never
    reduced."""
    from torch.nn.parallel import DistributedDataParallel

    loss = model.config.loss
    complete = loss.masked_modelling and loss.matching == "audio" and loss.matching_head
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=not complete)
