"""The trainer: exact resume after kill -9, skipped samples, bad input, options and config (the
sampler and metrics: test_sampling.py; distributed gradients: test_train_distributed.py)."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synth import generate

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
    from train.state import read_trainer_state

    steps = ["--steps", "8", "--ckpt-every", "2"]
    full = subprocess.run(train_cmd(synth_manifest, tmp_path / "full", *steps), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    run = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_SECOND_SAVE, *train_cmd(synth_manifest, run, *steps)[1:]],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert logged_steps(run) == [1, 2, 3, 4]
    saved = read_trainer_state(run / "checkpoint" / "trainer.pt")["state"]
    assert (saved["step"], saved["epoch"], saved["position"]) == (2, 0, 8)  # mid-epoch
    resumed = subprocess.run(train_cmd(synth_manifest, run, *steps, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert logged_steps(run) == [1, 2, 3, 4, *range(3, 9)]  # starts at the saved step, skips steps done
    a, b = losses_by_step(tmp_path / "full"), losses_by_step(run)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(3, 9):
        assert abs(a[step] - b[step]) <= 1e-6, (step, a[step], b[step])


def test_train_resume_continues_exactly_fast(synth_manifest, tmp_path):
    """The fast set's resume check (the kill -9 one above is slow): a run of 1 step, resumed to 2,
    logs step 2 with the loss of an uninterrupted 2-step run and ends with its weights, to float
    rounding. Step 2's loss needs the weights, the RNG (its masks) and the data position of step
    1; its weights need the optimizer's moments and the schedule too. Catches --resume skipped (a
    fresh run logs step 1 again), and any of those states not restored. The warm-up of 2 steps
    covers both runs, so the 1-step run's schedule gives step 1 the same rate."""
    from safetensors.torch import load_file

    from train.state import TrainConfig
    from train.trainer import train

    common = dict(manifest=str(synth_manifest), batch_size=4, workers=0, lr=1e-3, warmup=2, log_every=1, seed=3,
                  progress=False, overrides={"encoder.depth": 1, "decoder.depth": 1, "pool_norm": False})
    train(TrainConfig(out=str(tmp_path / "full"), steps=2, **common))  # pool_norm off: no statistics pass
    train(TrainConfig(out=str(tmp_path / "resumed"), steps=1, **common))
    train(TrainConfig(out=str(tmp_path / "resumed"), steps=2, resume=True, **common))
    assert logged_steps(tmp_path / "resumed") == [1, 2]
    full, resumed = losses_by_step(tmp_path / "full"), losses_by_step(tmp_path / "resumed")
    assert resumed[2] == pytest.approx(full[2], abs=1e-6)
    a, b = (load_file(tmp_path / run / "checkpoint" / "model.safetensors") for run in ("full", "resumed"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=1e-5, msg=name)


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


class RunsCode:
    """Unpickled, it creates `marker`: what a crafted trainer.pt does with `os.system` instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_train_resume_refuses_a_trainer_state_that_would_run_code(synth_manifest, saved_run, tmp_path,
                                                                  monkeypatch, capsys):
    """A trainer.pt whose state holds an object that runs code when unpickled: --resume refuses
    it in one line naming the file, and the code never runs (the marker file is not created).
    Catches `torch.load(..., weights_only=False)`, or any allow-list wide enough to admit
    `builtins.open`, in the trainer's resume."""
    run, marker = tmp_path / "run", tmp_path / "marker"
    shutil.copytree(saved_run, run)
    trainer = run / "checkpoint" / "trainer.pt"
    torch.save({"optimizer": {}, "schedule": {}, "state": {"step": 2, "evil": RunsCode(marker)}, "rng": {}},
               trainer)
    code, err = resume_error(synth_manifest, run, monkeypatch, capsys)
    assert not marker.exists()
    assert code == 1 and len(err) == 1 and "trainer.pt" in err[0] and "refused" in err[0], (code, err)


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


DECODER = ("decoder", "decoder_embed", "mask_token", "decoder_positions", "decoder_modality", "video_head",
           "audio_head", "text_head", "text_bias")  # what only masked modelling reads


@pytest.mark.parametrize("flags, terms, unused", [
    (["--no-masked-modelling"], {"nce_av", "nce_at", "match_av", "match_at"}, DECODER),
    (["--matching", "none"], {"video_mse", "audio_mse", "text_mlm"}, ("proj", "match_head", "logit_scale")),
    (["--matching", "video_text"], {"video_mse", "audio_mse", "text_mlm", "nce_vt", "match_vt"}, ("proj.audio",)),
    (["--no-matching-head"], {"video_mse", "audio_mse", "text_mlm", "nce_av", "nce_at"}, ("match_head",)),
])
def test_train_ablation_flags_switch_their_terms_off_to_zero_gradient(synth_manifest, monkeypatch, flags, terms,
                                                                       unused):
    """Each ablation flag of `vlsa train` reaches the model the trainer builds: the switched-off
    terms are gone from the step, the loss is exactly the terms left, and every parameter that
    only a switched-off term reads gets exactly zero gradient, while the rest get some. Catches a flag
    parsed but not passed on, and a term that is still computed (and still trains its part of
    the network) while no longer logged, which the old check of the logged names let through."""
    from click.testing import CliRunner
    from test_model import random_batch

    import train.trainer
    from vlsa.cli import cli

    seen = []
    monkeypatch.setattr(train.trainer, "train", lambda tc: seen.append(tc) or {"step": 0, "stopped_by": "done",
                                                                                 "skipped": {}})
    result = CliRunner().invoke(cli, ["train", "--manifest", str(synth_manifest), *SMALL, *flags])
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)
    model = train.trainer.build_model(seen[0], torch.device("cpu"))
    out = model(random_batch(model.config, B=4))
    assert set(out) - {"local", "global", "loss"} == terms
    loss = model.config.loss
    local = sum(getattr(loss, f"{k}_weight") * out[k] for k in ("video_mse", "audio_mse", "text_mlm") if k in terms)
    global_ = sum(out[k] for k in terms if k.startswith(("nce", "match")))
    torch.testing.assert_close(out["loss"], local + loss.global_weight * global_, atol=0, rtol=1e-6)
    out["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(unused):
            assert p.grad is None or not p.grad.any(), f"{flags}: {name} still trained"
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{flags}: {name} not trained"


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


def test_train_with_hard_negative_groups_draws_clips_that_share_a_word(synth_manifest, tmp_path, monkeypatch,
                                                                       caplog):
    """`vlsa train --group-size 2` changes which clips make each batch: the clips the trainer
    reads for its 3 steps (the whole epoch) come in pairs sharing their caption key
    (train.data.caption_keys), every full group first, where the plain shuffle of the same seed
    (ResumableSampler, what a run without the flag reads) pairs fewer. Catches --group-size
    parsed and logged but the plain sampler used, which the old check (it ran, it logged 3
    steps) let through."""
    import logging

    from train.data import ClipDataset, ResumableSampler, caption_keys
    from vlsa.cli import main

    real, drawn = ClipDataset.__getitem__, []
    monkeypatch.setattr(ClipDataset, "__getitem__", lambda self, i: drawn.append(i) or real(self, i))
    monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, tmp_path / "run", "--steps", "3", "--group-size", "2",
                                               "--set", "pool_norm=false"))  # no statistics pass: only the steps read
    with caplog.at_level(logging.INFO, logger="train.trainer"):
        main()
    captions = [json.loads(line)["text"] for line in synth_manifest.read_text().splitlines()]
    keys = caption_keys(captions, 2)
    full_groups = sum(sum(k == key for k in keys) // 2 for key in set(keys) - {None})
    assert full_groups >= 3, keys  # the synthetic captions share colour words
    assert f"hard-negative groups of 2: {sum(k is not None for k in keys)} of 12 clips" in caplog.text

    def paired(order):
        return sum(keys[a] is not None and keys[a] == keys[b] for a, b in zip(order[::2], order[1::2], strict=True))

    assert sorted(drawn) == list(range(12))
    assert paired(drawn) == min(full_groups, 6), (drawn, keys)
    plain = list(ResumableSampler(12, seed=3))  # train_cmd's --seed
    assert paired(plain) < paired(drawn), (plain, keys)


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


def test_train_audio_augment_reaches_the_training_data(synth_manifest, tmp_path, monkeypatch, capsys):
    """`vlsa train --audio-augment` hands the training data the sound augmentation
    (train/augment.py, tested in tests/test_augment.py) and a run without it does not. Catches
    the option parsed into the config but never passed on."""
    import train.trainer
    from vlsa.cli import main

    real, seen = train.trainer.training_dataset, []

    def spy(*args, **kwargs):
        dataset = real(*args, **kwargs)
        seen.append(dataset.augment)
        return dataset

    monkeypatch.setattr(train.trainer, "training_dataset", spy)
    for extra in (["--audio-augment"], []):
        monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, tmp_path / f"run{len(seen)}", "--steps", "1", *extra))
        main()
        assert "stopped (done) at step 1" in capsys.readouterr().out
    assert seen == [True, False]


def test_train_keeps_a_map_teachers_heatmaps_without_storing_the_teacher(synth_manifest, saved_run, tmp_path,
                                                                       monkeypatch, capsys):
    """`--map-teacher` adds the map term to every logged step and to the loss, and the
    checkpoint holds the model's tensors only (the teacher is never part of it); a teacher whose
    video input differs is refused in one line before any step. Catches the term computed but
    not logged or added, the teacher stored as a submodule, and a mismatched teacher reading
    frames of the wrong size. The teacher here is untrained, so whether it knows a pairing is
    chance: every row with a picture, a sound and a caption teaches, against a fixed random map
    (which rows teach is tests/test_map_teacher.py's)."""
    from safetensors import safe_open

    from train.map_teacher import MapTeacher
    from vlsa.api import VLSA
    from vlsa.cli import main

    def every_row_teaches(self, batch, gather=None):
        rows = (batch["has_video"] & batch["has_audio"] & batch["has_text"]).nonzero()[:, 0]
        return rows, torch.randn(len(rows), self.model.config.video.num_patches,
                                 generator=torch.Generator().manual_seed(0))

    monkeypatch.setattr(MapTeacher, "targets", every_row_teaches)
    teacher = saved_run / "checkpoint"
    run = tmp_path / "kept"
    monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, run, "--steps", "2", "--map-teacher", str(teacher),
                                               "--map-teacher-weight", "3"))
    main()
    assert "stopped (done) at step 2" in capsys.readouterr().out
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and all(0 < row["map_distill"] <= 2 for row in logged)
    for row in logged:  # the weighted term is part of the loss
        others = row["local"] + 5.0 * row["global"]
        assert row["loss"] == pytest.approx(others + 3 * row["map_distill"], rel=1e-4)
    with safe_open(run / "checkpoint" / "model.safetensors", "pt") as mine, \
            safe_open(teacher / "model.safetensors", "pt") as theirs:
        assert set(mine.keys()) == set(theirs.keys())

    other = tmp_path / "other"
    model = VLSA.from_pretrained(teacher)
    model.config.video.size = 32
    VLSA(model.config).save_pretrained(other)
    monkeypatch.setattr(sys, "argv", train_cmd(synth_manifest, tmp_path / "refused", "--steps", "1",
                                               "--map-teacher", str(other)))
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1 and "its video input differs" in err[0], err
    assert not (tmp_path / "refused" / "checkpoint").exists()
