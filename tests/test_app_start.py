"""`vlsa app` and `vlsa demo` start-up: the page is served only once a search costs what any later
one does."""

import threading

import pytest
import torch

import vlsa.api
from app import callbacks
from app.cli import open_app
from app.context import ModelThread


def test_model_thread_runs_torch_on_one_thread():
    """A query is too small for torch's intra-op threads to pay, and on a machine whose other
    cores are busy every operation waits for its slowest thread (docs/PERFORMANCE.md). Catches
    the model thread left at torch's default (one thread per core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a new thread starts with this (whatever OMP_NUM_THREADS the tests run with)
    thread = ModelThread()
    try:
        assert thread.run(torch.get_num_threads) == 1
    finally:
        thread.close()
        torch.set_num_threads(threads)


@pytest.mark.slow  # the app_library fixture trains a model
def test_open_app_warms_the_search_paths_before_the_page_is_served(app_library, tmp_path, monkeypatch):
    """open_app (what serve() runs before it answers a request) leaves nothing for the first text
    or sound search to build or load: no tokenizer, no audio front end, no vectors read from the
    catalog. Catches the warm-up dropped from open_app (the first search then reads the vectors
    and builds the tokenizer, as it did when the first search after a start took seconds), the
    pictures of the library's moments not asked for ahead (callbacks.draw_ahead, tested there),
    and a context that leaves its picture or model threads running once closed."""
    running = set(threading.enumerate())  # other tests' apps may have left theirs
    asked: list = []
    monkeypatch.setattr(callbacks, "draw_ahead", asked.append)
    ctx, _ = open_app(str(app_library.db), workdir=str(tmp_path))
    try:
        assert asked == [ctx]
        built: list[str] = []

        def building(what: str):
            def build(*args, **kwargs):
                built.append(what)
                raise AssertionError(f"the first search built the {what}")
            return build

        monkeypatch.setattr(vlsa.api, "build_tokenizer", building("tokenizer"))
        monkeypatch.setattr(vlsa.api, "build_frontend", building("audio front end"))
        monkeypatch.setattr(ctx.service.catalog, "load_vectors", building("vectors"))
        *_, text_status = ctx.run(callbacks.search_text, app_library.captions[0])
        *_, sound_status = ctx.run(callbacks.search_audio, str(app_library.clips[0]))
        assert not built, built
        assert "results**" in text_status and "results**" in sound_status
    finally:
        ctx.close()
    # What serve() does when the server stops: no picture or model thread is left running.
    left = set(threading.enumerate()) - running
    assert not [t.name for t in left if t.name.startswith(("vlsa-model", "vlsa-thumbnail"))]
