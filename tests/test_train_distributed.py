"""Distributed training: two gloo processes give the gradients of one process on the joined batch."""

import itertools
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

# --- distributed: two gloo processes == one process on the joined batch ---

JOINED_BATCH = 8


def _default_model():
    """The default tiny loss, every term on: masked modelling, pool_norm, the matching head."""
    from vlsa.config import preset_config
    from vlsa.model import VLSAModel

    torch.manual_seed(0)
    model = VLSAModel(preset_config("tiny", **{"encoder.depth": 1, "decoder.depth": 1}))
    assert model.config.pool_norm and model.config.loss.matching_head and model.config.loss.masked_modelling
    return model


def _batch(model):
    """The joined batch; rank r takes rows [r B/2, (r+1) B/2). Rows without audio or text fall
    unevenly across the ranks (rank 0: two without audio, rank 1: one without text)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_model import random_batch

    batch = random_batch(model.config, B=JOINED_BATCH, seed=1)
    batch["has_audio"][[1, 2]] = False
    batch["has_text"][5] = False
    return batch


def _draw_per_sample(monkeypatch, offset: int) -> None:
    """Make torch.rand give each sample of the joined batch the same numbers in either layout:
    the n-th call draws the joined batch's numbers from seed n and returns this process's rows
    (every random draw of the training forward is torch.rand with the batch first)."""
    real_rand, calls = torch.rand, itertools.count()

    def rand(*size, device=None, **kwargs):
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, torch.Size)) else size
        joined = real_rand((JOINED_BATCH, *size[1:]), generator=torch.Generator().manual_seed(next(calls)))
        return joined[offset:offset + size[0]].to(device)

    monkeypatch.setattr(torch, "rand", rand)


def _leave(dist) -> None:
    """Both ranks meet before either tears the group down: a rank that exits while its peer is
    still writing its result closes gloo's connection under it (the peer aborts: "terminate
    called without an active exception")."""
    dist.barrier()
    dist.destroy_process_group()


def _rank_grads(rank, world, rendezvous, out):
    import torch.distributed as dist

    from train.distributed import gather_with_grad, wrap_ddp

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # see the test's docstring
    # a file rendezvous: no port to race for with other tests' servers
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    model = _default_model()
    ddp = wrap_ddp(model, torch.device("cpu"))
    batch = {k: v.chunk(world)[rank] for k, v in _batch(model).items()}
    with pytest.MonkeyPatch.context() as monkeypatch:
        _draw_per_sample(monkeypatch, rank * JOINED_BATCH // world)
        ddp.train()(batch, gather=gather_with_grad)["loss"].backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, out)
    _leave(dist)


def test_distributed_gives_joined_batch_gradients_for_every_term(tmp_path, monkeypatch):
    """Two gloo processes, each on half the batch, give the gradients of one process on the
    joined batch for the whole default loss: masked modelling (the masks drawn per sample
    alike in both layouts), the contrastive and matching terms, pool_norm in training mode.
    Catches pool_norm standardising with one rank's statistics, matching negatives drawn from
    one rank's rows, and means over one rank's count (rows without a modality fall unevenly
    here), each of which the old test (pool_norm, matching head and masked modelling off)
    let through. In float64: at initialisation pooled caption features hardly differ from
    caption to caption, and pool_norm's division by their spread lifts float32 rounding to 1e-3
    of some gradients in either layout, while the algebra compared here holds to 1e-8."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = _default_model().train()
        with monkeypatch.context() as patch:
            _draw_per_sample(patch, 0)
            model(_batch(model))["loss"].backward()
    finally:
        torch.set_default_dtype(dtype)
    expected = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    mp.spawn(_rank_grads, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "g.pt")), nprocs=2, join=True)
    got = torch.load(tmp_path / "g.pt", weights_only=True)
    assert got.keys() == expected.keys() and len(got) == len(list(model.parameters()))
    for name in expected:
        scale = expected[name].abs().max().clamp(min=1e-3)
        assert (got[name] - expected[name]).abs().max() <= 1e-6 * scale, name


def _rank_gather_grad(rank, world, rendezvous, out):
    import torch.distributed as dist

    from train.distributed import gather_with_grad

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    x = torch.arange(24.0).view(4, 3, 2).requires_grad_()
    joined, _ = gather_with_grad(x)
    weights = torch.arange(world * 24.0).view(2, 3, world * 4)
    (joined.transpose(0, 2) * weights).sum().backward()  # reaches the gather as a strided gradient
    if rank == 0:
        torch.save(x.grad, out)
    _leave(dist)


def test_gather_hands_back_gradients_that_arrive_strided(tmp_path):
    """Two gloo processes: each rank's rows get the sum over ranks of their share of the
    gradient, also when that gradient reaches the gather strided (after a transpose or an
    einsum). Catches gloo reading a strided gradient as dense, which gave wrong gradients."""
    mp.spawn(_rank_gather_grad, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "g.pt")), nprocs=2, join=True)
    weights = torch.arange(2 * 24.0).view(2, 3, 8).transpose(0, 2)  # d loss / d joined
    assert torch.equal(torch.load(tmp_path / "g.pt", weights_only=True), 2 * weights[:4])
