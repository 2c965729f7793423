"""Distributed training: two gloo processes give the gradients of one process on the joined batch."""

import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp

# --- distributed: two gloo processes == one process on the joined batch ---

JOINED_BATCH = 8


# Every loss term the trainer can switch on, in as few configurations as cover them: the first
# has every term at once (the default loss, the text teacher's distillation and the map
# teacher's term), each other is an ablation (which also changes how DDP is wrapped). All run in
# the same two processes: starting them is most of this test's time.
TEACHER = "all-minilm-l6-v2"  # its name only: the network is replaced by FixedTextTeacher
CASES = {
    "every term": {"text.tokenizer": TEACHER, "text.teacher": TEACHER},
    "video_text": {"loss.matching": "video_text"},
    "no matching": {"loss.matching": "none"},
    "no masked modelling or head": {"loss.masked_modelling": False, "loss.matching_head": False},
}
MAP_TEACHER_CASE = "every term"


class FixedTextTeacher(torch.nn.Module):
    """Stands in for the pretrained sentence encoder (the term's gather is tested, not MiniLM):
    a fixed function of the ids, the same in every process, no weights to read."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randn(49409, 16, generator=torch.Generator().manual_seed(5)))

    def forward(self, ids, mask):
        w = mask[..., None].to(self.table.dtype)
        return torch.nn.functional.normalize((self.table[ids] * w).sum(1), dim=-1)


def _model(overrides: dict):
    """The tiny model at one layer, seeded: the default loss has every term on (masked
    modelling, pool_norm, the matching head), `overrides` switch terms on or off."""
    from vlsa.api import VLSA

    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"encoder.depth": 1, "decoder.depth": 1, **overrides})
    if model.config.text.teacher:
        model.text_teacher = FixedTextTeacher()
    return model.train()


def _batch(model):
    """The joined batch; rank r takes rows [r B/2, (r+1) B/2). Rows without audio or text fall
    unevenly across the ranks (rank 0: two without audio, rank 1: one without text), and rows 2
    and 6 share a caption: a hard-negative group, which the grouped sampler deals to the two
    ranks in turn (tests/test_sampling.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_model import random_batch

    batch = random_batch(model.config, B=JOINED_BATCH, seed=1)
    batch["has_audio"][[1, 2]] = False
    batch["has_text"][5] = False
    batch["text"][6] = batch["text"][2]
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


def _gradients(case: str, teacher_folder: str, world: int, rank: int) -> dict[str, torch.Tensor]:
    """One training step of `case` on this process's rows of the joined batch, through the
    trainer's own step (train.loop._forward_backward: DDP, the gather, the map teacher's term);
    the gradients it leaves."""
    from train.distributed import wrap_ddp
    from train.loop import _forward_backward
    from train.map_teacher import MapTeacher
    from train.state import TrainConfig
    from vlsa.distributed import DistInfo

    model = _model(CASES[case])
    dist = DistInfo(rank=rank, world=world)
    teacher = MapTeacher(teacher_folder, model, dist.device) if case == MAP_TEACHER_CASE else None
    run = SimpleNamespace(model=model, wrapped=wrap_ddp(model, dist.device) if world > 1 else model, dist=dist,
                          tc=TrainConfig(manifest="unused", map_teacher_weight=2.0), map_teacher=teacher)
    batch = {k: v.chunk(world)[rank] for k, v in _batch(model).items()}
    with pytest.MonkeyPatch.context() as monkeypatch:
        _draw_per_sample(monkeypatch, rank * JOINED_BATCH // world)
        out = _forward_backward(run, batch, micro=0)
    assert ("map_distill" in out) == (teacher is not None) and ("text_distill" in out) == (case == "every term")
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _save_map_teacher(folder: Path) -> None:
    """A random tiny map teacher that knows (train.map_teacher) other rows of the joined batch
    than of each rank's half: row 3 among all 8 videos; rows 3, 4 and 6 among their own rank's 4."""
    from train.map_teacher import MapTeacher
    from vlsa.api import VLSA

    torch.manual_seed(4)
    VLSA.from_preset("tiny", **{"encoder.depth": 1, "decoder.depth": 1}).save_pretrained(folder)
    model = _model(CASES[MAP_TEACHER_CASE])
    teacher, batch = MapTeacher(str(folder), model, torch.device("cpu")), _batch(model)
    halves = [teacher.targets({k: v.chunk(2)[r] for k, v in batch.items()})[0] + 4 * r for r in range(2)]
    assert teacher.targets(batch)[0].tolist() == [3] and torch.cat(halves).tolist() == [3, 4, 6]


def _rank_grads(rank, world, rendezvous, teacher_folder, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # see the test's docstring
    # a file rendezvous: no port to race for with other tests' servers
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    grads = {case: _gradients(case, teacher_folder, world, rank) for case in CASES}
    if rank == 0:
        torch.save(grads, out)
    _leave(dist)


def test_distributed_gives_joined_batch_gradients_for_every_term(tmp_path):
    """Two gloo processes, each on half the batch, give the gradients of one process on the
    joined batch for every term the trainer can switch on: masked modelling (the masks drawn per
    sample alike in both layouts), the contrastive and matching terms, pool_norm in training
    mode, the text teacher's distillation, the map teacher's term, and each ablation (which also
    changes DDP's wrapping), with rows of a hard-negative group on both ranks. Catches
    pool_norm standardising with one rank's statistics, matching negatives drawn from one rank's
    rows, means over one rank's count (rows without a modality fall unevenly here), the
    distillation's similarities taken among one rank's captions, and the map teacher judging a
    sound against one rank's videos or averaging over one rank's rows. In float64: at
    initialisation pooled caption features hardly differ from caption to caption, and
    pool_norm's division by their spread lifts float32 rounding to 1e-3 of some gradients in
    either layout, while the algebra compared here holds to 1e-8 (the distillation's
    similarities are float32 by design, hence the tolerance)."""

    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _save_map_teacher(tmp_path / "teacher")
        expected = {}
        for case in CASES:
            expected[case] = _gradients(case, str(tmp_path / "teacher"), world=1, rank=0)
    finally:
        torch.set_default_dtype(dtype)
    mp.spawn(_rank_grads, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "teacher"), str(tmp_path / "g.pt")),
             nprocs=2, join=True)
    got = torch.load(tmp_path / "g.pt", weights_only=True)
    for case, grads in expected.items():
        assert got[case].keys() == grads.keys(), case
        for name in grads:
            scale = grads[name].abs().max().clamp(min=1e-3)
            assert (got[case][name] - grads[name]).abs().max() <= 1e-6 * scale, (case, name)


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
