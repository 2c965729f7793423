"""The trainer: exact resume after kill -9, skipped samples, distributed gradients, evaluation."""

import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from synth import generate
from train.data import GroupedSampler, ResumableSampler, caption_keys, read_manifest
from train.evaluate import ranks_of_truth, retrieval_metrics

VLSA_BIN = str(Path(sys.executable).parent / "vlsa")
SMALL = ["--set", "encoder.depth=2", "--set", "decoder.depth=1"]


@pytest.fixture(scope="module")
def synth_manifest(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), n=12, seed=5, split="train")


def train_cmd(manifest, out, *extra):
    return [VLSA_BIN, "train", "--manifest", str(manifest), "--out", str(out), "--batch-size", "4",
            "--workers", "0", "--lr", "1e-3", "--warmup", "2", "--log-every", "1", "--no-progress",
            "--seed", "3", *SMALL, *extra]


def losses_by_step(run: Path) -> dict[int, float]:
    """The last logged loss of each step (a resumed run logs the steps after its checkpoint again)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["step"]] = row["per_step_loss"][-1]
    return out


def logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# `vlsa train` that kills itself with SIGKILL inside its second checkpoint save, once the weights
# are written and before the trainer state (optimizer, RNG, data position) is
KILLED_IN_SECOND_SAVE = """
import os, signal, sys
from vlsa.api import VLSA
from vlsa.cli import main

real_save, saves = VLSA.save_pretrained, []

def save_then_die(self, path, extra=None):
    written = real_save(self, path, extra)
    saves.append(path)
    if len(saves) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return written

VLSA.save_pretrained = save_then_die
sys.argv = ["vlsa", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_train_killed_during_a_save_resumes_exactly(synth_manifest, tmp_path):
    """12 clips in batches of 4 are 3 steps an epoch; a checkpoint every 2 steps puts the first
    in the middle of epoch 0 (step 2, 8 samples in). The run is killed with SIGKILL inside the
    save of step 4, between the weights and the trainer state; `--resume` must continue from
    step 2, whole, and log steps 3-8 with the uninterrupted run's losses to 1e-6.
    Catches: --resume doing nothing (a fresh TrainState: it logs steps 1-8 again, which the
    same losses of a same-seed fresh run used to hide); a save that is not one unit (step 4's
    weights resumed with step 2's optimizer, RNG and data position: other losses); a data
    position or RNG state not restored."""
    steps = ["--steps", "8", "--ckpt-every", "2"]
    full = subprocess.run(train_cmd(synth_manifest, tmp_path / "full", *steps), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    run = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_SECOND_SAVE, *train_cmd(synth_manifest, run, *steps)[1:]],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert logged_steps(run) == [1, 2, 3, 4]
    saved = torch.load(run / "checkpoint" / "trainer.pt", weights_only=False)["state"]
    assert (saved["step"], saved["epoch"], saved["position"]) == (2, 0, 8)  # mid-epoch
    resumed = subprocess.run(train_cmd(synth_manifest, run, *steps, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert logged_steps(run) == [1, 2, 3, 4, *range(3, 9)]  # starts at the saved step, skips steps done
    a, b = losses_by_step(tmp_path / "full"), losses_by_step(run)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(3, 9):
        assert abs(a[step] - b[step]) <= 1e-6, (step, a[step], b[step])


@pytest.fixture(scope="module")
def saved_run(synth_manifest, tmp_path_factory) -> Path:
    """A run folder whose checkpoint/ is of step 2, as `train_cmd` would resume it."""
    from train.state import TrainConfig, TrainState, save_run
    from train.trainer import build_model, build_optimizer, build_schedule
    from vlsa.distributed import DistInfo

    tc = TrainConfig(manifest=str(synth_manifest), out=str(tmp_path_factory.mktemp("saved") / "run"),
                     overrides={"encoder.depth": 2, "decoder.depth": 1})
    model = build_model(tc, torch.device("cpu"))
    opt = build_optimizer(model, tc, fused=False)
    save_run(model, opt, build_schedule(opt, tc), TrainState(step=2), tc, DistInfo())
    return Path(tc.out)


def resume_error(synth_manifest, run, monkeypatch, capsys) -> tuple[int, list[str]]:
    from vlsa.cli import main

    monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, run, "--steps", "4", "--resume"))
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
@pytest.mark.parametrize("name", ["trainer.pt", "model.safetensors", "config.json"])
def test_train_resume_from_a_damaged_file_is_one_line(synth_manifest, saved_run, tmp_path, monkeypatch, capsys,
                                                      name, kind):
    """--resume on a damaged checkpoint file: one line naming the file, exit code 1. Catches a
    traceback (random bytes in trainer.pt) and 'aborted', exit 130 (an empty trainer.pt: the
    EOFError that click reads as Ctrl-D)."""
    from test_checkpoint import corrupt

    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    corrupt(run / "checkpoint" / name, kind)
    code, err = resume_error(synth_manifest, run, monkeypatch, capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and name in err[0], (code, err)


def test_train_resume_refuses_weights_and_state_of_two_steps(synth_manifest, saved_run, tmp_path, monkeypatch,
                                                             capsys):
    """A checkpoint folder mixing files of two saves (copied by hand, or written by an older
    version killed mid-save) is refused, not resumed inconsistently."""
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    config["extra"]["step"] = 4
    (run / "checkpoint" / "config.json").write_text(json.dumps(config))
    code, err = resume_error(synth_manifest, run, monkeypatch, capsys)
    assert code == 1 and len(err) == 1 and "weights are of step 4, trainer.pt of step 2" in err[0], err


def test_train_skips_bad_rows_and_reports_why(synth_manifest, tmp_path):
    rows = [json.loads(line) for line in synth_manifest.read_text().splitlines()][:6]
    base = synth_manifest.parent
    for row in rows:
        row["video"] = str(base / row["video"])
    (tmp_path / "corrupt.mp4").write_text("this is not a video\n")
    rows.append({"video": str(tmp_path / "missing.mp4"), "text": "gone"})
    rows.append({"video": str(tmp_path / "corrupt.mp4"), "text": "broken"})
    rows[0].pop("text")  # a row without text trains, left out of the text losses
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run(train_cmd(manifest, tmp_path / "run", "--steps", "4"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert "stopped (done) at step 4" in summary
    assert "missing file" in summary and "not a media file" in summary
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()


def test_train_with_an_empty_eval_split_fails_before_training(synth_manifest, tmp_path, monkeypatch, capsys):
    """An --eval-split with no samples is one line and exit code 1, before any step. Catches the
    old catch-all that logged a warning and exited 0 with no evaluation."""
    from vlsa.cli import main

    monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, tmp_path / "run", "--steps", "1",
                                               "--eval-split", "nosuch"))
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1 and "no samples in split 'nosuch'" in err[0], err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_train_evaluation_failure_fails_the_run_after_saving(synth_manifest, tmp_path, monkeypatch):
    """Any error of the end-of-run evaluation stops the run with that error, after the checkpoint
    is saved. Catches turning an evaluation ValueError into a warning and a clean exit."""
    from train import loop
    from train.state import TrainConfig
    from train.trainer import train

    def broken(*args, **kwargs):
        raise ValueError("every evaluation sample failed to decode")

    monkeypatch.setattr(loop, "evaluate", broken)
    tc = TrainConfig(manifest=str(synth_manifest), out=str(tmp_path / "run"), batch_size=4, workers=0, steps=1,
                     eval_split="train", progress=False, overrides={"encoder.depth": 1, "decoder.depth": 1})
    with pytest.raises(ValueError, match="failed to decode"):
        train(tc)
    assert (tmp_path / "run" / "checkpoint" / "trainer.pt").is_file()


def test_train_ablations_run(synth_manifest, tmp_path):
    for flags in (["--no-masked-modelling"], ["--matching", "none"], ["--matching", "video_text"]):
        result = subprocess.run(train_cmd(synth_manifest, tmp_path / flags[-1], "--steps", "2", *flags),
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        logged = json.loads((tmp_path / flags[-1] / "metrics.jsonl").read_text().splitlines()[-1])
        assert ("nce_vt" in logged) == (flags == ["--matching", "video_text"])
        assert ("video_mse" in logged) == (flags != ["--no-masked-modelling"])


@pytest.mark.slow
def test_train_whole_model_compile_matches_eager(synth_manifest, tmp_path, monkeypatch):
    """--compile model (the whole training forward) trains the same steps as eager mode, to float32
    rounding; --bf16-residual changes nothing without autocast. Inductor draws random numbers its
    own way (the masks differ, not their distribution), so this comparison asks for eager's."""
    import torch._inductor.config

    from train.state import TrainConfig
    from train.trainer import train

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    common = dict(manifest=str(synth_manifest), batch_size=4, workers=0, lr=1e-3, warmup=2, log_every=1, steps=2,
                  seed=3, progress=False, overrides={"encoder.depth": 2, "decoder.depth": 1})
    train(TrainConfig(out=str(tmp_path / "eager"), **common))
    train(TrainConfig(out=str(tmp_path / "model"), compile="model", bf16_residual=True, **common))
    eager, compiled = losses_by_step(tmp_path / "eager"), losses_by_step(tmp_path / "model")
    assert sorted(eager) == sorted(compiled) == [1, 2]
    for step, loss in eager.items():
        assert compiled[step] == pytest.approx(loss, rel=1e-4), step


def test_train_cli_compile_choices(synth_manifest, tmp_path, monkeypatch):
    """--compile alone means blocks (also before another option); --compile model; none by default."""
    from click.testing import CliRunner

    import train.trainer
    from vlsa.cli import cli

    seen = []
    monkeypatch.setattr(train.trainer, "train", lambda tc: seen.append(tc) or {"step": 0, "stopped_by": "done",
                                                                                 "skipped": {}})
    for flags in ([], ["--compile", "--steps", "1"], ["--compile", "model", "--bf16-residual"]):
        result = CliRunner().invoke(cli, ["train", "--manifest", str(synth_manifest), *flags])
        assert result.exit_code == 0, result.output
    assert [(tc.compile, tc.bf16_residual) for tc in seen] == [("none", False), ("blocks", False), ("model", True)]
    assert CliRunner().invoke(cli, ["train", "--manifest", str(synth_manifest), "--compile", "all"]).exit_code == 2


def test_schedule_warms_up_linearly_then_decays_by_cosine_and_resumes():
    """The learning rate of each step: lr * (s + 1) / warmup during the warm-up, then a cosine
    from lr down to lr * min_lr_ratio at the last step; a schedule rebuilt from its state_dict
    mid-run (as --resume does) goes on with the same rates. Catches a warm-up off by one step, a
    floor left at 0, a cosine over the wrong length, and a resume that restarts the schedule."""
    import math

    from train.state import TrainConfig
    from train.trainer import build_schedule

    tc = TrainConfig("m", lr=1e-3, warmup=4, steps=12, min_lr_ratio=0.1)

    def expected(s: int) -> float:
        if s < tc.warmup:
            return tc.lr * (s + 1) / tc.warmup
        cos = 0.5 * (1 + math.cos(math.pi * (s - tc.warmup) / (tc.steps - tc.warmup)))
        return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * cos)

    def rates(sched, opt, n: int) -> list[float]:
        out = []
        for _ in range(n):
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return out

    def schedule():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=tc.lr)
        return build_schedule(opt, tc), opt

    sched, opt = schedule()
    first = rates(sched, opt, 6)
    resumed, opt2 = schedule()
    resumed.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    got = first + rates(resumed, opt2, tc.steps + 1 - 6)
    assert got == pytest.approx([expected(s) for s in range(tc.steps + 1)], rel=1e-9, abs=1e-15)


def test_train_options_are_the_config_fields(synth_manifest, tmp_path, monkeypatch):
    """`vlsa train` has an option for every TrainConfig field (overrides aside: --set), with the
    field's help; the command line beats a --config file, which beats the defaults. Catches a
    field added without its option (as min_lr_ratio once was), and option defaults overriding
    the --config file (--out's did)."""
    import dataclasses

    from click.testing import CliRunner

    import train.trainer
    from train.state import TrainConfig
    from vlsa.cli import cli

    command = cli.get_command(None, "train")
    by_name = {p.name: p for p in command.params}
    for f in dataclasses.fields(TrainConfig):
        if f.name != "overrides":
            assert f.name in by_name and by_name[f.name].help == f.metadata["help"], f.name
    seen = []
    monkeypatch.setattr(train.trainer, "train", lambda tc: seen.append(tc) or {"step": 0, "stopped_by": "done",
                                                                                 "skipped": {}})
    config = tmp_path / "run.toml"
    config.write_text(f'out = "{tmp_path / "from-file"}"\nsteps = 7\nlr = 0.5\n')
    args, default = ["train", "--manifest", str(synth_manifest), "--config", str(config)], TrainConfig("m")
    for extra in ([], ["--steps", "3", "--min-lr-ratio", "0.25", "--no-progress"]):
        result = CliRunner().invoke(cli, [*args, *extra])
        assert result.exit_code == 0, result.output
    assert [(tc.out, tc.steps, tc.lr, tc.min_lr_ratio, tc.progress, tc.warmup) for tc in seen] == [
        (str(tmp_path / "from-file"), 7, 0.5, 0.0, True, default.warmup),
        (str(tmp_path / "from-file"), 3, 0.5, 0.25, False, default.warmup)]


def test_train_config_reads_the_old_compile_switch():
    from train.state import TrainConfig

    assert TrainConfig("m", compile=True).compile == "blocks" and TrainConfig("m", compile=False).compile == "none"
    with pytest.raises(ValueError, match="compile must be one of"):
        TrainConfig("m", compile="everything")


def test_train_with_hard_negative_groups(synth_manifest, tmp_path):
    result = subprocess.run(train_cmd(synth_manifest, tmp_path / "grouped", "--steps", "3", "--group-size", "2"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    keyed = int(result.stderr.split("hard-negative groups of 2: ")[1].split()[0])
    assert 0 < keyed <= 12  # the 12 synthetic captions share colour words
    assert len((tmp_path / "grouped" / "metrics.jsonl").read_text().splitlines()) == 3


def test_sampler_shards_ranks_and_resumes():
    full = list(ResumableSampler(10, seed=1))
    assert sorted(full) == list(range(10))
    sampler = ResumableSampler(10, seed=1)
    sampler.set_position(0, 4)
    assert list(sampler) == full[4:]
    ranks = [list(ResumableSampler(10, seed=1, rank=r, world=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(10)) and not set(ranks[0]) & set(ranks[1])


def test_caption_keys_pick_the_rarest_word_shared_by_a_group():
    captions = ["a red circle", "a red square", "a red star", "a blue circle", "a blue square", "a blue star",
                "a green circle", "a green square", "a grey circle", None]
    # "a" is in more than half of the captions; "green", "grey" and "star" in fewer than 3;
    # "red" and "blue" (3 each) are rarer than "circle" (4) and win a tie with "square" (3)
    assert caption_keys(captions, group=3) == ["red"] * 3 + ["blue"] * 3 + ["circle", "square", "circle", None]


def test_grouped_sampler_keeps_groups_together_and_resumes():
    colours = ["red", "blue", "green", "cyan", "white", "pink", "teal"]
    captions = [f"a {c} {s} moves" for c in colours for s in ["circle", "square", "star", "cross"]] + ["silence"] * 3
    sampler = GroupedSampler(captions, seed=1, group=3)
    assert set(sampler.keys) == {*colours, "silence"}  # a colour (4 clips) is rarer than a shape (7)
    order = list(sampler)
    assert sorted(order) == list(range(len(captions)))
    # the full groups first (one of 3 per colour, and the 3 silent clips), then the 7 leftovers
    groups = [order[k:k + 3] for k in range(0, 24, 3)]
    assert all(len({sampler.keys[i] for i in g}) == 1 for g in groups)
    assert len({sampler.keys[g[0]] for g in groups}) == 8
    assert len({sampler.keys[i] for i in order[24:]}) == 7
    again = GroupedSampler(captions, seed=1, group=3)
    again.set_position(0, 5)
    assert list(again) == order[5:]
    again.set_position(1, 0)
    assert list(again) != order and sorted(again) == sorted(order)
    ranks = [list(GroupedSampler(captions, seed=1, group=3, rank=r, world=2)) for r in range(2)]
    assert [i for pair in zip(*ranks, strict=True) for i in pair] == order[:len(order) // 2 * 2]


def test_retrieval_metrics_on_known_ranks():
    sim = torch.eye(4)
    sim[1] = torch.tensor([0.0, 0.5, 0.9, 0.1])  # truth ranks 2nd
    sim[3] = torch.tensor([1.0, 0.9, 0.8, 0.1])  # truth ranks 4th
    assert ranks_of_truth(sim).tolist() == [1, 2, 1, 4]
    m = retrieval_metrics(sim)
    assert m["R@1"] == 50.0 and m["R@5"] == 100.0 and m["MedR"] == 1.0 and m["MeanR"] == 2.0


@pytest.mark.parametrize("n", [5, 64])
def test_retrieval_metrics_of_constant_scores_are_chance(n):
    """A collapsed model (every score equal) scores exactly chance: R@k = 100 k / N, mean and median
    rank (N + 1) / 2. Catches ranking the truth first among equal scores (the old `>` count gave
    R@1 = 100 here) and the pessimistic rank (R@1 = 0, rank N)."""
    m = retrieval_metrics(torch.ones(n, n))
    for k in (1, 5, 10, 50):
        assert m[f"R@{k}"] == pytest.approx(100.0 * min(k, n) / n, abs=1e-9), k
    assert m["MedR"] == m["MeanR"] == (n + 1) / 2 and m["N"] == n


def test_retrieval_metrics_split_a_tie_evenly():
    """Truth tied with one other score below one higher score: rank 2 or 3 with equal chance, so
    rank 2.5. Catches counting the tie for (rank 2) or against (rank 3) the truth."""
    sim = torch.tensor([[0.5, 0.9, 0.5, 0.1]] + [[0.0] * 4] * 3)
    sim[1:, 1:] = torch.eye(3)  # rows 1-3: the truth alone on top
    assert ranks_of_truth(sim).tolist() == [2.5, 1.0, 1.0, 1.0]
    m = retrieval_metrics(sim)
    assert m["R@1"] == 75.0 and m["MeanR"] == pytest.approx(5.5 / 4)


def test_retrieval_metrics_without_ties_are_unchanged():
    """Where no score ties the truth's, the ranks are the plain count of higher scores plus one."""
    sim = torch.randn(50, 50, generator=torch.Generator().manual_seed(0))
    plain = (sim > sim.diagonal()[:, None]).sum(dim=1) + 1
    assert ranks_of_truth(sim).tolist() == plain.float().tolist()
    m = retrieval_metrics(sim)
    for k in (1, 5, 10, 50):
        assert m[f"R@{k}"] == pytest.approx(100.0 * (plain <= k).float().mean().item()), k
    assert m["MedR"] == plain.float().median().item() and m["MeanR"] == pytest.approx(plain.float().mean().item())


def test_read_manifest_resolves_paths(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"video": "a.mp4", "text": "x", "split": "test"}\n{"video": "/abs/b.mp4"}\n')
    rows = read_manifest(tmp_path / "m.jsonl")
    assert rows[0].video == tmp_path / "a.mp4" and rows[1].video == Path("/abs/b.mp4")
    assert [r.split for r in rows] == ["test", "train"]
    # bad lines are skipped with their line numbers: tests/test_manifest.py


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
    got = torch.load(tmp_path / "g.pt")
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
    assert torch.equal(torch.load(tmp_path / "g.pt"), 2 * weights[:4])


def test_finetune_from_checkpoint_uses_video_text_loss(synth_manifest, tmp_path):
    pre = subprocess.run(train_cmd(synth_manifest, tmp_path / "pre", "--steps", "1"), capture_output=True, text=True)
    assert pre.returncode == 0, pre.stderr
    result = subprocess.run([VLSA_BIN, "finetune", "--checkpoint", str(tmp_path / "pre" / "checkpoint"),
                             "--manifest", str(synth_manifest), "--out", str(tmp_path / "ft"), "--epochs", "1",
                             "--batch-size", "4", "--workers", "0", "--eval-split", "", "--no-progress"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fine-tuned 3 steps" in result.stdout
    logged = json.loads((tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "nce_vt" in logged and "video_mse" not in logged and "nce_av" not in logged
    config = json.loads((tmp_path / "ft" / "checkpoint" / "config.json").read_text())
    assert config["loss"]["matching"] == "video_text" and config["encoder"]["depth"] == 2


def test_train_sigterm_checkpoints_and_exits_143(synth_manifest, tmp_path):
    """SIGTERM (a scheduler's pre-emption): the run saves a checkpoint, then exits 143 as a
    process the signal ended would. Catches exiting 0, which tells a scheduler the run finished."""
    proc = subprocess.Popen(train_cmd(synth_manifest, tmp_path / "run", "--steps", "10000", "--ckpt-every", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped (SIGTERM)" in out
    step = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["extra"]["step"]
    assert 1 <= step < 10000


def test_train_config_file_sets_training_and_model_fields(synth_manifest, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('steps = 1\nbatch_size = 4\nworkers = 0\n[model]\nencoder.depth = 1\n'
                      '[model.loss]\nmatching = "video_text"\n')
    result = subprocess.run([VLSA_BIN, "train", "--manifest", str(synth_manifest), "--out", str(tmp_path / "run"),
                             "--config", str(config), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert saved["encoder"]["depth"] == 1 and saved["loss"]["matching"] == "video_text"
    config.write_text("bogus = 1\n")
    result = subprocess.run([VLSA_BIN, "train", "--manifest", str(synth_manifest), "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown training field 'bogus'" in result.stderr


def test_eval_group_keeps_only_that_groups_rows(synth_manifest, tmp_path):
    """`vlsa eval --group G` scores one held-out set of the corpus: catches a filter that keeps
    every row (the metrics would mix the sets) or none, and a group asked of a shard folder."""
    from train.evaluate import eval_dataset
    from vlsa.config import preset_config

    rows = [json.loads(line) for line in Path(synth_manifest).read_text().splitlines()]
    for i, row in enumerate(rows):
        row.update(split="test", group="even" if i % 2 == 0 else "odd")
        for key in ("video", "audio"):
            if row.get(key):
                row[key] = str(Path(synth_manifest).parent / row[key])
    manifest = tmp_path / "grouped.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = preset_config("tiny")
    even = eval_dataset(manifest, config, "test", group="even")
    assert len(even) == (len(rows) + 1) // 2 and len(eval_dataset(manifest, config, "test")) == len(rows)
    assert [r.text for r in even.rows] == [r["text"] for r in rows[::2]]
    with pytest.raises(ValueError, match="group 'none'"):
        eval_dataset(manifest, config, "test", group="none")
    with pytest.raises(ValueError, match="shard folder"):
        eval_dataset(tmp_path, config, "test", group="even")
