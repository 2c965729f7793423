"""app/thumbnails.py: the gallery's pictures as files made once (no model, no media)."""

import os
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from app.thumbnails import Thumbnail, Thumbnails
from vlsa.media import MediaError


def picture(value: int):
    """A `make` that draws a flat picture and counts its calls."""
    def make() -> np.ndarray:
        make.calls += 1
        return np.full((16, 16, 3), value, np.uint8)
    make.calls = 0
    return make


def test_thumbnails_are_made_once_and_kept_as_jpeg_files(tmp_path):
    """A moment shown again is not drawn again and keeps its file (so gradio's cache name and the
    browser's copy stay valid). Catches a cache that is never hit, or a new file per search."""
    thumbnails = Thumbnails(tmp_path / "t", keep=8)
    make = picture(200)
    first = thumbnails.get([Thumbnail("a", make, "a.mp4")])
    again = thumbnails.get([Thumbnail("a", make, "a.mp4")])
    assert first == again and make.calls == 1
    with Image.open(first[0]) as image:
        assert image.format == "JPEG" and image.size == (16, 16)
        assert abs(int(np.asarray(image).mean()) - 200) <= 2


def test_thumbnails_keep_order_blanks_and_failures_which_are_tried_again(tmp_path):
    """Pictures come back in the order asked, None and a picture that cannot be made (a file gone
    since indexing) as the blank tile; the failure is not kept. Catches a failure that costs the
    search its other pictures, a blank kept for good, or results out of order."""
    thumbnails = Thumbnails(tmp_path / "t", keep=8)

    def gone() -> np.ndarray:
        gone.calls += 1
        raise MediaError("gone.mp4: no such file")
    gone.calls = 0
    shown = thumbnails.get([Thumbnail("x", picture(10), "x.mp4"), None, Thumbnail("g", gone, "gone.mp4"),
                            Thumbnail("y", picture(250), "y.mp4")])
    assert shown[1] == shown[2] == thumbnails.blank and len(set(shown)) == 3
    means = [int(np.asarray(Image.open(f)).mean()) for f in (shown[0], shown[3])]
    assert means[0] < 20 and means[1] > 240
    thumbnails.get([Thumbnail("g", gone, "gone.mp4")])
    assert gone.calls == 2 and len(thumbnails) == 2


def test_thumbnails_drop_the_least_recently_shown_and_its_file(tmp_path):
    """Past `keep`, the picture shown longest ago goes, file and all; one shown again stays.
    Catches an unbounded cache (files piling up in the app's folder) or dropping the newest."""
    thumbnails = Thumbnails(tmp_path / "t", keep=2)
    a, b, c = (thumbnails.get([Thumbnail(k, picture(i), k)])[0] for i, k in enumerate("abc"))
    assert not (tmp_path / "t" / a.rsplit("/", 1)[1]).exists() and len(thumbnails) == 2
    remade = picture(0)
    assert thumbnails.get([Thumbnail("b", remade, "b")]) == [b] and remade.calls == 0
    thumbnails.get([Thumbnail("d", picture(3), "d")])  # drops c, the least recently shown
    assert thumbnails.get([Thumbnail("b", remade, "b")]) == [b] and not (tmp_path / "t" / c.rsplit("/", 1)[1]).exists()


def test_thumbnails_missing_from_one_search_are_made_side_by_side(tmp_path):
    """A search's missing pictures are drawn on the pool's threads, not one after another on the
    caller's. Catches a pool that is never used."""
    thumbnails = Thumbnails(tmp_path / "t", threads=2)
    barrier = threading.Barrier(2, timeout=10)  # both must be drawing at once to pass

    def make() -> np.ndarray:
        barrier.wait()
        return np.zeros((8, 8, 3), np.uint8)
    shown = thumbnails.get([Thumbnail("a", make, "a"), Thumbnail("b", make, "b")])
    assert thumbnails.blank not in shown and len(set(shown)) == 2


def made(thumbnails: Thumbnails, count: int) -> None:
    """Wait until `count` pictures are kept (the ahead thread works in the background)."""
    deadline = time.monotonic() + 30
    while len(thumbnails) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_thumbnails_made_ahead_are_shown_without_drawing_and_fill_only_free_room(tmp_path):
    """Pictures asked for ahead are made in the background and a search then shows them without
    drawing again; they fill only the room left under `keep`, never pushing out a picture a search
    showed. Catches `ahead` doing nothing, a search drawing a picture already made ahead, or
    pictures made ahead evicting shown ones."""
    thumbnails = Thumbnails(tmp_path / "t", keep=2)
    shown_make = picture(9)
    shown = thumbnails.get([Thumbnail("shown", shown_make, "shown")])
    makes = [picture(i) for i in range(3)]
    thumbnails.ahead([Thumbnail(k, make, k) for k, make in zip("abc", makes, strict=True)])
    thumbnails._ahead.submit(lambda: None).result()  # the ahead thread has been through a, b and c
    assert thumbnails.get([Thumbnail("a", makes[0], "a"), Thumbnail("shown", shown_make, "shown")])[1:] == shown
    assert [m.calls for m in makes] == [1, 0, 0] and shown_make.calls == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")
def test_thumbnails_ahead_run_at_the_lowest_cpu_priority(tmp_path, monkeypatch):
    """Pictures made ahead must not slow a search (the model thread) or the page: the thread that
    makes them, and only it, is set to nice 19 (os.setpriority is recorded, since the tests may
    run under `nice` already). Catches the priority never set, or set on the whole process (then
    a search and the page would be niced too)."""
    calls: list[tuple] = []
    monkeypatch.setattr(os, "setpriority", lambda *args: calls.append(args))
    thumbnails = Thumbnails(tmp_path / "t")
    makers: list[int] = []

    def make() -> np.ndarray:
        makers.append(threading.get_native_id())
        return np.zeros((8, 8, 3), np.uint8)
    thumbnails.ahead([Thumbnail("ahead", make, "ahead")])
    made(thumbnails, 1)
    thumbnails.close()
    assert calls == [(os.PRIO_PROCESS, makers[0], 19)] and makers[0] != os.getpid()
