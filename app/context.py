"""What every callback needs: the search service, the file allow-list, the app's folder, limits.

    ctx = open_context("library.db")                  # service opened on the model thread
    hits = ctx.run(callbacks.search_text, "a dog barks", "any", "", "any length", True)

`ModelThread`: gradio runs each event in a pool thread, but a catalog is used only on the thread
that opened it (the rule is in catalog/store.py, Catalog), and one model on a CPU gains nothing
from running two queries at once. So the app opens the catalog on one thread and runs everything
that touches the catalog or the model there, whatever gradio's queue does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from app.files import FileGuard, OpenFile, UploadLimits, open_file, refused
from app.thumbnails import Thumbnails
from catalog.service import SearchService
from vlsa.api import VLSA

T = TypeVar("T")
TOP = 12  # results per search: two rows of the gallery
QUERY_THREADS = 1  # torch's intra-op threads on the model thread (see ModelThread)


class ModelThread:
    """One worker thread; `run` calls a function on it and waits for the result (or exception).

    Torch runs on that one thread alone (QUERY_THREADS): a query is a sentence or a few windows of
    sound, too small for intra-op threads to pay, and on a machine whose other cores are busy (an
    indexer, a training run) every operation waits for its slowest thread: 6-9x slower with two
    threads than with one on a busy 2-core machine (docs/PERFORMANCE.md)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlsa-model",
                                        initializer=torch.set_num_threads, initargs=(QUERY_THREADS,))

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Context:
    service: SearchService
    files: FileGuard
    workdir: Path  # the app's own temporary folder: cut clips live in workdir / "clips"
    limits: UploadLimits = field(default_factory=UploadLimits)
    top: int = TOP
    thread: ModelThread | None = None  # None: callbacks run on the caller's thread (tests)
    thumbnails: Thumbnails = field(init=False)  # the gallery's pictures, in workdir / "thumbnails"

    def __post_init__(self) -> None:
        self.thumbnails = Thumbnails(self.workdir / "thumbnails")

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(self, *args) on the model thread."""
        if self.thread is None:
            return fn(self, *args)
        return self.thread.run(fn, self, *args)

    def close(self) -> None:
        """Stop the picture threads and the model thread, closing the catalog on the thread it
        was opened on."""
        self.thumbnails.close()
        self.run(lambda ctx: ctx.service.catalog.close())
        if self.thread is not None:
            self.thread.close()

    def open_served(self, path: str) -> OpenFile:
        """`path` opened for the HTTP file route if the app may send it (see FileGuard.open), else
        FileRefused. The app's own files (the gallery's thumbnails among them) are answered at
        once; a media file is checked on the model thread, since the guard reads the catalog, and
        so waits for a search that is running."""
        opened = open_file(path)
        try:
            if self.files.own(opened) or self.run(lambda ctx: ctx.files.indexed(opened)):
                return opened
        except BaseException:
            opened.close()
            raise
        opened.close()
        raise refused(path)

    @property
    def model(self) -> VLSA:
        return self.service.model

    @property
    def window(self) -> float:
        """Seconds per window of the catalog (the window reader needs it to place the audio)."""
        settings = self.service.catalog.settings
        return settings.window if settings else self.model.config.clip_seconds

    @property
    def clip_dir(self) -> Path:
        folder = self.workdir / "clips"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def make_context(service: SearchService, workdir: str | os.PathLike | None = None,
                 limits: UploadLimits | None = None) -> Context:
    """A context for `service`, loading its model now so a bad checkpoint fails at start-up."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="vlsa-app-"))
    service.model  # noqa: B018 (loads it; raises CatalogError / CheckpointMismatch)
    files = FileGuard.for_catalog(service.catalog, workdir)
    return Context(service, files, workdir, limits or UploadLimits())


def open_context(db: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None, limits: UploadLimits | None = None) -> Context:
    """Open the catalog and its model on a new model thread, where every later call runs."""
    thread = ModelThread()

    def build() -> Context:
        return make_context(SearchService.open(db, checkpoint=checkpoint), workdir, limits)

    try:
        ctx = thread.run(build)
    except BaseException:
        thread.close()
        raise
    ctx.thread = thread
    return ctx
