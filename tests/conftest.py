"""Shared fixtures: a trained tiny checkpoint and an indexed library of generated clips, and the
search app running on it in a subprocess; and a small pretrained sound model in a fake package.

`app_library` overfits a tiny model on 8 synthetic clips until each caption retrieves its own clip
(the app tests need a model whose answers are right, and an untrained one's are not), then
indexes the clips. About 15-30 s on a 2-core CPU; built once per test session, only when asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

VLSA_BIN = Path(sys.executable).with_name("vlsa")
CLIPS = 8
SEED = 123
# Overfitting recipe, measured: with masked modelling and the matching head off (only the
# contrastive terms, whose job retrieval is) and a 2-layer encoder, every caption ranks its own
# clip first, by picture and by sound, from about 60 steps at lr 1e-3; 150 leaves a margin.
STEPS = 150
OVERRIDES = {"loss.masked_modelling": False, "loss.matching_head": False, "encoder.depth": 2}
APP_START_SECONDS = 120  # importing torch and gradio and loading the model, on a busy CI machine
UPLOAD_MB = 1.0  # the running app's upload limit: small, so a test can exceed it cheaply


@dataclass
class Library:
    root: Path  # the library folder (the clips are in root / "clips")
    db: Path  # its catalog
    checkpoint: Path
    clips: list[Path]  # in manifest order
    captions: list[str]  # captions[i] describes clips[i]


def _train(rows: list[dict], root: Path):
    """A tiny model overfitted on the clips of the manifest rows (seeded; the caller's random
    state and thread count are left as they were)."""
    threads = torch.get_num_threads()
    # One thread: with two, a busy CPU (another job on one core) makes every step wait at the
    # thread barrier: measured 2.8 s a step here instead of 0.2 s.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return _overfit(rows, root)
    finally:
        torch.set_num_threads(threads)


def _overfit(rows: list[dict], root: Path):
    from vlsa import VLSA
    from vlsa.batch import collate, make_sample
    from vlsa.media import load_clip

    model = VLSA.from_preset("tiny", **OVERRIDES).train()
    cfg = model.config
    samples = [make_sample(load_clip(root / r["video"], 0.0, cfg.clip_seconds, cfg.video, cfg.audio),
                           r["text"], cfg, model.frontend, model.tokenizer) for r in rows]
    batch = collate(samples)  # as tests/test_overfit.py builds it
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    for _ in range(STEPS):
        model(batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="session")
def app_library(tmp_path_factory) -> Library:
    """8 generated clips, a checkpoint overfitted on them, and their catalog."""
    from catalog.indexer import Indexer
    from catalog.store import Catalog
    from synth import generate

    base = tmp_path_factory.mktemp("app")
    root = base / "library"
    manifest = generate(root, n=CLIPS, seed=SEED, split="test")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    model = _train(rows, root)
    checkpoint = base / "checkpoint"
    model.save_pretrained(checkpoint)
    db = base / "library.db"
    with Catalog(db) as catalog:
        report = Indexer(catalog, model, checkpoint=str(checkpoint)).run([str(root)])
    assert report.indexed == CLIPS and not report.failed, report.to_dict()
    return Library(root, db, checkpoint, [root / r["video"] for r in rows], [r["text"] for r in rows])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + APP_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vlsa app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"vlsa app did not answer in {APP_START_SECONDS} s:\n{log.read_text()}")


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class RunningApp:
    url: str  # http://127.0.0.1:PORT
    port: int
    upload_mb: float  # its upload size limit


@contextlib.contextmanager
def serve_app(db: Path, log: Path) -> Iterator[RunningApp]:
    """`vlsa app` on the catalog `db`, on a free 127.0.0.1 port, stopped on exit."""
    port = free_port()
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VLSA_BIN), "app", "--db", str(db), "--port", str(port),
                                 "--no-browser", "--max-upload-mb", str(UPLOAD_MB)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url + "/", proc, log)
        yield RunningApp(url, port, UPLOAD_MB)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def running_app(app_library, tmp_path_factory) -> Iterator[RunningApp]:
    """`vlsa app` on the library, stopped after the session."""
    with serve_app(app_library.db, tmp_path_factory.mktemp("app-log") / "app.log") as app:
        yield app


@pytest.fixture
def small_sound_model(tmp_path, monkeypatch):
    """A 32-wide trunk saved as aisfx saves its checkpoint ((state dict with class heads, numpy
    scalars), under `embedding_net.`) in a package `fake_aisfx`, registered as 'small'."""
    from vlsa.audio_tower import PRETRAINED, EmbeddingTrunk, checkpoint_file

    package = tmp_path / "fake_aisfx"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package code must not run')\n")
    torch.manual_seed(0)
    trunk = EmbeddingTrunk(32)
    for m in trunk.modules():  # BatchNorm statistics other than the defaults, so loading shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"embedding_net.{k}": v for k, v in trunk.state_dict().items()}
    state["fc.0.0.weight"] = torch.zeros(16, 32)  # a class head: must not be read
    file = package / "models" / "checkpoint.pth"
    torch.save((state, {"library": (np.int64(0), 16)}), file)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = dataclasses.replace(PRETRAINED["aisfx"], package="fake_aisfx", version="", sha256=digest, width=32)
    monkeypatch.setitem(PRETRAINED, "small", spec)
    checkpoint_file.cache_clear()
    yield trunk.eval()
    checkpoint_file.cache_clear()
    sys.modules.pop("fake_aisfx", None)
