"""The gallery's pictures: one JPEG file per moment shown, made once and kept.

Handed pictures as arrays, gradio encodes every result anew for each search and the browser
fetches each anew. A file made once keeps its content and so its name in gradio's cache, which
the browser may keep (app/server.py): a moment shown by an earlier search costs neither again.
The pictures a search still lacks are made side by side: decoding a frame waits mostly in
FFmpeg, outside Python's lock. A library small enough to keep every picture has them all made
ahead, in the background at the lowest CPU priority, from the start (`ahead`): a search then
shows moments no search showed before without decoding them.

    thumbnails = Thumbnails(workdir / "thumbnails")
    thumbnails.ahead([Thumbnail(key, make, name), ...])                  # returns at once
    files = thumbnails.get([Thumbnail(key, make, name), None, ...])   # None: the blank tile
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app import heatmaps
from vlsa.media import MediaError

log = logging.getLogger(__name__)

KEEP = 1024  # pictures kept (160 x 160 JPEG: about 6 kB each)
THREADS = 2  # pictures made at once


@dataclass(frozen=True)
class Thumbnail:
    """One picture to show: `make()` draws it (uint8 H x W x 3) when it is not kept yet."""

    key: Hashable  # the moment: (path, size, mtime_ns, start, end)
    make: Callable[[], np.ndarray]
    name: str  # for the log, when it cannot be made


class Thumbnails:
    """The JPEG files of the pictures shown, the least recently shown dropped past `keep`."""

    def __init__(self, folder: str | os.PathLike, keep: int = KEEP, threads: int = THREADS):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._files: OrderedDict[Hashable, str] = OrderedDict()
        self._names = itertools.count()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="vlsa-thumbnail")
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="vlsa-thumbnail-ahead", initializer=lowest_priority)
        self._lock = threading.Lock()  # _files: read and changed by the caller's thread and the ahead thread
        self.blank = self._write(heatmaps.blank())

    def get(self, wanted: Sequence[Thumbnail | None]) -> list[str]:
        """A file for each wanted picture, in order; the blank tile for None and for a picture
        that cannot be made (a file moved or changed since it was indexed: not kept, so it is
        tried again next time)."""
        with self._lock:
            missing = {t.key: t for t in wanted if t is not None and t.key not in self._files}
        made = dict(zip(missing, self._pool.map(self._make, missing.values()), strict=True))
        with self._lock:
            for key, file in made.items():
                if file is not None:
                    self._put(key, file)
            shown = [self._files.get(t.key, self.blank) if t is not None else self.blank for t in wanted]
            for t in wanted:
                if t is not None and t.key in self._files:
                    self._files.move_to_end(t.key)
            while len(self._files) > max(self.keep, len(wanted)):
                _, file = self._files.popitem(last=False)
                os.remove(file)
        return shown

    def ahead(self, wanted: Sequence[Thumbnail]) -> None:
        """Make these pictures in the background, one at a time, while there is room to keep them;
        returns at once. A search that wants one first makes it itself."""
        for thumbnail in wanted[:self.keep]:
            self._ahead.submit(self._make_ahead, thumbnail)

    def __len__(self) -> int:
        return len(self._files)

    def close(self) -> None:
        self._ahead.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True)

    def _make_ahead(self, thumbnail: Thumbnail) -> None:
        with self._lock:
            if thumbnail.key in self._files or len(self._files) >= self.keep:
                return
        file = self._make(thumbnail)
        if file is not None:
            with self._lock:
                self._put(thumbnail.key, file)

    def _put(self, key: Hashable, file: str) -> None:
        """Keep `file` for `key`; if the other thread made it meanwhile, the first file stays
        (its name may be in a page already)."""
        if key in self._files:
            os.remove(file)
        else:
            self._files[key] = file

    def _make(self, thumbnail: Thumbnail) -> str | None:
        try:
            return self._write(thumbnail.make())
        except (MediaError, OSError, StopIteration) as e:
            log.warning("no thumbnail for %s: %s", thumbnail.name, e)
            return None

    def _write(self, image: np.ndarray) -> str:
        file = self.folder / f"{next(self._names)}.jpeg"
        Image.fromarray(image).save(file, format="JPEG")
        return str(file)


def lowest_priority() -> None:
    """Run the calling thread at the lowest CPU priority (Linux sets it per thread): pictures
    made ahead must not slow a search or the page. Elsewhere the thread keeps its priority."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
