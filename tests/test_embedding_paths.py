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


CAPTIONS = ["a dog barks", "someone plays a slow tune on the piano while rain falls outside", "red",
            "a bell rings twice in the hall"]


def training_batch(model: VLSA) -> dict[str, torch.Tensor]:
    """Captions of different lengths (so each row has its own padding) with random clips, as
    vlsa/batch.py's collate lays out a training batch."""
    g = torch.Generator().manual_seed(1)
    cfg, B = model.config, len(CAPTIONS)
    ids, mask = model.prepare_text(CAPTIONS)
    ones = torch.ones(B, dtype=torch.bool)
    return {"video": torch.randn(B, cfg.video.frames, 3, cfg.video.size, cfg.video.size, generator=g),
            "audio": torch.randn(B, cfg.audio.bins, cfg.audio.frames, generator=g),
            "text": ids, "text_mask": mask, "text_maskable": mask.clone(),
            "has_video": ones, "has_audio": ones.clone(), "has_text": ones.clone()}


@pytest.mark.parametrize("pool_norm", [False, True])
def test_a_query_alone_is_what_a_training_forward_embeds(pool_norm):
    """A search-time query (the API's embed_text of one caption, embed_prepared of one clip or
    sound) equals its row's global embedding in a training forward of a batch holding captions of
    other lengths: "a search-time query sees what training saw". Without pool_norm the forward
    runs in training mode (nothing else differs between the modes); with it, in eval mode, since
    training standardises with the batch's statistics on purpose. Catches a training text pass
    that attends to padding (0.03 off) or pools over it, and any other input a training pass
    reads that a query alone does not."""
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"encoder.depth": 1, "pool_norm": pool_norm})
    batch = training_batch(model)
    assert len(set(batch["text_mask"].sum(1).tolist())) == len(CAPTIONS)
    model.train(not pool_norm)
    with torch.no_grad():
        _, z = model(batch, return_embeddings=True)
    tight = dict(atol=1e-6, rtol=0)
    for i, caption in enumerate(CAPTIONS):
        torch.testing.assert_close(model.embed_text([caption])[0], z["text"][i], **tight)
        torch.testing.assert_close(model.embed_prepared("video", batch["video"][i:i + 1])[0], z["video"][i], **tight)
        torch.testing.assert_close(model.embed_prepared("audio", batch["audio"][i:i + 1])[0], z["audio"][i], **tight)
