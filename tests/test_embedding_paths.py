"""One window, one vector: what the catalog stores, what a query computes and what a heatmap
explains all come out of the same decoding and the same model-input preparation."""

import numpy as np
import pytest
import torch
from mediagen import make_audio, make_video

from app.render import window_data
from catalog.indexer import Indexer
from catalog.service import SearchService
from catalog.store import Catalog
from vlsa.api import VLSA

TOLERANCE = 1e-6  # float error between batch sizes; a different input moves a vector far more


@pytest.fixture(scope="module")
def model() -> VLSA:
    torch.manual_seed(0)  # random weights do: the routes must agree for any weights
    return VLSA.from_preset("tiny", **{"encoder.depth": 1, "embed_dim": 16}).eval()


def heatmap_vector(model: VLSA, modality: str, data) -> np.ndarray:
    """The global vector a heatmap explains, read back from its maps: a map's shares average to
    the cosine of the query with that vector, so the unit query e_i gives its i-th component."""
    patch_map = model.video_patch_map if modality == "video" else model.audio_patch_map
    raw = data.frames if modality == "video" else data.wave
    return np.array([float(patch_map(e, raw).mean()) for e in torch.eye(model.config.embed_dim)])


def test_a_window_has_one_vector_by_every_route(tmp_path, model):
    """A catalogued window's stored vector equals the query path's vector (a query sound's own
    windows; the API's embed_video of the window) and the global vector its heatmaps explain.

    Catches a second copy of any step drifting from the first: frames sampled at other times
    (frame times off the segment centres), audio cut, padded or normalised otherwise (the
    front end, the clip span), or a heatmap computed on other input than the stored vector."""
    lib = tmp_path / "lib"
    lib.mkdir()
    make_video(lib / "av.mp4", 3.0)  # windows 0-2 and 1-3 at a 1 s stride: overlapping reads
    make_audio(lib / "tone.wav", 2.5, tone_hz=660.0)
    with Catalog(tmp_path / "c.db") as catalog:
        Indexer(catalog, model, stride=1.0).run([str(lib)])
    service = SearchService(Catalog(tmp_path / "c.db", read_only=True), model)
    catalog, window = service.catalog, service.catalog.settings.window
    checked = set()
    for media in catalog.media(status="ok"):
        windows = catalog.windows(media.id)
        for w in windows:
            data = window_data(model, window, media.path, w.start, w.end, media.has_video, media.has_audio)
            for modality in w.modalities:
                stored = catalog.embedding(w.id, modality)
                np.testing.assert_allclose(heatmap_vector(model, modality, data), stored, atol=TOLERANCE)
                checked.add(modality)
        if media.has_audio:
            stored = np.stack([catalog.embedding(w.id, "audio") for w in windows])
            np.testing.assert_allclose(service.embed_audio(media.path), stored, atol=TOLERANCE)
        if media.has_video:
            stored = np.stack([catalog.embedding(w.id, "video") for w in windows])
            query = model.embed_video([(media.path, w.start, w.end) for w in windows]).numpy()
            np.testing.assert_allclose(query, stored, atol=TOLERANCE)
    assert checked == {"video", "audio"}
