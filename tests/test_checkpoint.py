"""save_pretrained / from_pretrained: bit-exact round trips, one-line refusals."""

import json
import random

import pytest
import torch

import vlsa.checkpoint
from vlsa import VLSA
from vlsa.checkpoint import CheckpointError, recover_folder, writing_folder


def corrupt(file, kind: str) -> None:
    """Damage a file as a full disk, a bad copy or a stray write would."""
    data = file.read_bytes()
    file.write_bytes({"empty": b"", "random": random.Random(0).randbytes(4096),
                      "truncated": data[: len(data) // 2]}[kind])


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = VLSA.from_preset("tiny")
    with torch.no_grad():  # move away from the initialisation so a fresh model would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VLSA.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.fingerprint() == model.fingerprint()
    assert VLSA.from_preset("tiny").fingerprint() != model.fingerprint()


# What the shipped checkpoints' fingerprints were when their catalogs were made (synthetic: the
# default until 2026-12-02; real: the default since, its weights last changed 2026-12-06 when the
# aisfx tower was fitted into it): a catalog records it, and a different one re-indexes the whole
# library. Change it only with the shipped weights.
SHIPPED_FINGERPRINTS = {"synthetic": "91f29fb1ef2d3fbf", "real": "9d5d9d136e7c986d"}


@pytest.mark.parametrize("shipped", sorted(SHIPPED_FINGERPRINTS))
def test_shipped_checkpoints_keep_their_fingerprint(shipped):
    """A config setting added later (encoder.pre_norm, for --init-clip) is left out of the config
    while it is at its old default, so a shipped model keeps the fingerprint its users' catalogs
    recorded. Catches such a setting written even at its default: every user's library would be
    re-indexed from scratch after an upgrade. And once set, it is written (and so read back)."""
    from vlsa.checkpoint import SHIPPED, load_config

    folder = SHIPPED.parent / shipped
    assert VLSA.from_pretrained(folder).fingerprint() == SHIPPED_FINGERPRINTS[shipped]
    config = load_config(folder)
    config.encoder.pre_norm = True
    assert type(config).from_dict(config.to_dict()).encoder.pre_norm is True


def test_checkpoint_config_that_does_not_fit_is_refused(tmp_path):
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["encoder"]["width"] = 64
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        VLSA.from_pretrained(tmp_path / "ckpt")
    message = str(info.value)
    assert "\n" not in message and "do not fit" in message and "ckpt" in message


def test_load_into_with_fresh_prefixes_loads_everything_else(tmp_path):
    """`vlsa train --init C --init-fresh token_embed --init-fresh text_bias` with another tokenizer:
    the vocabulary-sized weights keep the new model's initialisation, every other weight is the
    file's (catches a load that drops more than it names, or loads nothing), and without the
    prefixes, or with a prefix naming no weight, the mismatch is still refused."""
    source = VLSA.from_preset("tiny")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    source.save_pretrained(tmp_path / "ckpt")
    target = VLSA.from_preset("tiny", **{"text.vocab_size": 1000})
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="do not fit"):
        vlsa.checkpoint.load_into(target, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="token_embed"):
        vlsa.checkpoint.load_into(target, tmp_path / "ckpt", ("text_bias",))
    with pytest.raises(CheckpointError, match="names no weight"):
        vlsa.checkpoint.load_into(target, tmp_path / "ckpt", ("token_embed", "txt_bias"))
    vlsa.checkpoint.load_into(target, tmp_path / "ckpt", ("token_embed", "text_bias"))
    loaded, file = target.state_dict(), source.state_dict()
    fresh = [k for k in loaded if k.startswith(("token_embed", "text_bias"))]
    assert fresh and all(torch.equal(loaded[k], before[k]) for k in fresh)
    kept = [k for k in loaded if k not in fresh]
    assert all(torch.equal(loaded[k], file[k]) for k in kept)


def test_checkpoint_missing_or_corrupt_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a VLSA checkpoint"):
        VLSA.from_pretrained(tmp_path)
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="unreadable"):
        VLSA.from_pretrained(tmp_path / "ckpt")


def test_checkpoint_unknown_config_key_is_refused(tmp_path):
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["video"]["fps_typo"] = 3
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="fps_typo"):
        VLSA.from_pretrained(tmp_path / "ckpt")


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_checkpoint_damaged_file_is_one_line_naming_it(tmp_path, name, kind):
    """Catches a damaged file reaching the user as a traceback (a config.json holding a JSON
    list did: 'list' object has no attribute 'pop')."""
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    corrupt(tmp_path / "ckpt" / name, kind)
    with pytest.raises(CheckpointError) as info:
        VLSA.from_pretrained(tmp_path / "ckpt")
    assert "\n" not in str(info.value) and name in str(info.value), str(info.value)
    (tmp_path / "ckpt" / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        VLSA.from_pretrained(tmp_path / "ckpt")


def write(folder, text: str) -> None:
    (folder / "a.txt").write_text(text)
    (folder / "b.txt").write_text(text)


def contents(folder) -> dict:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_writing_folder_replaces_the_folder_whole(tmp_path):
    """A block that fails leaves the previous folder as it was and nothing beside it; one that
    ends replaces the folder. Catches files written in place, one by one."""
    ckpt = tmp_path / "checkpoint"
    with writing_folder(ckpt) as partial:
        write(partial, "one")
    with pytest.raises(RuntimeError), writing_folder(ckpt) as partial:
        (partial / "a.txt").write_text("two")  # killed before b.txt
        raise RuntimeError("killed")
    assert contents(ckpt) == {"a.txt": "one", "b.txt": "one"} and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    with writing_folder(ckpt) as partial:
        write(partial, "two")
    assert contents(ckpt) == {"a.txt": "two", "b.txt": "two"} and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_writing_folder_killed_between_its_renames_recovers_the_previous(tmp_path, monkeypatch):
    """Killed after the previous folder was moved aside and before the new one took its name:
    recover_folder (run by every later write and by the trainer's resume) puts the previous one
    back. Catches a swap that removes the previous folder first, or leaves the name empty."""
    ckpt = tmp_path / "checkpoint"
    with writing_folder(ckpt) as partial:
        write(partial, "one")
    real_replace, calls = vlsa.checkpoint.os.replace, []

    def die_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for SIGKILL: no clean-up code runs after it
        real_replace(src, dst)

    monkeypatch.setattr(vlsa.checkpoint.os, "replace", die_on_second_rename)
    with pytest.raises(KeyboardInterrupt), writing_folder(ckpt) as partial:
        write(partial, "two")
    monkeypatch.undo()
    assert not ckpt.exists()
    recover_folder(ckpt)
    assert contents(ckpt) == {"a.txt": "one", "b.txt": "one"}
    with writing_folder(ckpt) as partial:  # and the next save goes through, leaving nothing beside it
        write(partial, "three")
    assert contents(ckpt) == {"a.txt": "three", "b.txt": "three"} and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


@pytest.fixture
def disk_events(monkeypatch) -> list[tuple]:
    """os.fsync and os.replace, recorded in order as ("fsync", path) and ("replace", src, dst)
    (a descriptor's path read from /proc at the call), then done for real."""
    import os

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def assert_flushed_around_rename(events: list[tuple], partial, target) -> None:
    """`partial` flushed before its rename to `target`, and target's folder flushed after it."""
    rename = events.index(("replace", str(partial), str(target)))
    assert ("fsync", str(partial)) in events[:rename], (partial, events)
    assert ("fsync", str(target.parent)) in events[rename + 1:], (target.parent, events)


def test_save_pretrained_flushes_each_file_before_its_rename(tmp_path, disk_events):
    """Each file of a checkpoint is fsynced under its temporary name before os.replace gives it
    the final one, and the folder after (the rename itself made durable). Catches a save that
    only renames: after a power cut the name can point at an empty weights file."""
    folder = tmp_path / "ckpt"
    VLSA.from_preset("tiny", **{"encoder.depth": 1}).save_pretrained(folder)
    for name in (vlsa.checkpoint.WEIGHTS_NAME, vlsa.checkpoint.CONFIG_NAME):
        assert_flushed_around_rename(disk_events, folder / (name + ".tmp"), folder / name)


def test_trainer_checkpoint_flushes_every_file_and_the_folder_before_the_swap(tmp_path, disk_events):
    """save_run (train/state.py) writes checkpoint/ through writing_folder: every file of the new
    folder and the folder itself are fsynced before the folder is renamed into place, and the run
    folder after. Catches writing_folder's flush left out (a power cut could leave the swapped-in
    folder with empty files, the previous one already gone)."""
    from train.state import TrainConfig, TrainState, save_run
    from train.trainer import build_model, build_optimizer, build_schedule
    from vlsa.distributed import DistInfo

    tc = TrainConfig(manifest="unused.jsonl", out=str(tmp_path / "run"), overrides={"encoder.depth": 1})
    model = build_model(tc, torch.device("cpu"))
    opt = build_optimizer(model, tc, fused=False)
    path = save_run(model, opt, build_schedule(opt, tc), TrainState(step=1), tc, DistInfo())
    partial = path.with_name(path.name + vlsa.checkpoint.PARTIAL_SUFFIX)
    swap = disk_events.index(("replace", str(partial), str(path)))
    files = sorted(p.name for p in path.iterdir())
    assert files == ["config.json", "model.safetensors", "trainer.pt"]
    flushed = {e[1] for e in disk_events[:swap] if e[0] == "fsync"}
    assert {str(partial / name) for name in files} | {str(partial)} <= flushed, disk_events
    assert ("fsync", str(path.parent)) in disk_events[swap + 1:]


def test_write_manifest_flushes_before_its_rename(tmp_path, disk_events):
    """The manifests the data commands write (and `vlsa data merge`) are flushed before their
    rename, as checkpoints are. Catches a plain rename."""
    from train.datasets.common import write_manifest

    out = tmp_path / "m" / "manifest.jsonl"
    write_manifest([{"video": "a.mp4", "text": "x"}], out)
    assert_flushed_around_rename(disk_events, out.with_name(out.name + ".partial"), out)
