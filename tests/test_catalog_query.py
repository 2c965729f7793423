"""A sound used as a query is cut, decoded and embedded as the catalog's windows are."""

import shutil

import numpy as np
import pytest
from requires import require_shared_media

from catalog.indexer import Indexer
from catalog.model import default_checkpoint, load_model
from catalog.service import SearchService
from catalog.store import Catalog

# Short sounds, sounds of two to four windows, and a video's soundtrack: wav, mp3, ogg and AAC.
SUBSET = ["sounds/scratch/Animal", "sounds/lmms/effects", "sounds/lmms/bassloops",
          "sounds/scratch/Music Loops/Medieval1.mp3", "video/bigbuckbunny.mp4"]


@pytest.fixture(scope="module")
def shipped_catalog(tmp_path_factory):
    """A copy of SUBSET of the shared media indexed with the shipped checkpoint."""
    shared = require_shared_media()
    lib = tmp_path_factory.mktemp("query") / "lib"
    for rel in SUBSET:
        src, dst = shared / rel, lib / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    model, checkpoint = load_model(default_checkpoint())
    catalog = Catalog(lib.parent / "lib.db")
    report = Indexer(catalog, model, checkpoint=checkpoint).run([str(lib)])
    assert report.indexed > 30 and not report.failed, report.to_dict()
    yield SearchService(catalog, model)
    catalog.close()


def test_search_audio_finds_each_catalogued_sound_first(shipped_catalog):
    """Every catalogued sound, as a query, ranks one of its own windows first (tied at most).

    Catches a query embedded otherwise than the stored windows: the clips of a sound longer than
    a window averaged into one vector (HorseGallop.wav ranked its own windows 11th behind
    Medieval1.mp3), another cut, padding or length cap."""
    service = shipped_catalog
    media = service.catalog.media(status="ok")
    assert max(m.duration for m in media) > 3 * service.catalog.settings.window  # several windows
    lost = []
    for m in (m for m in media if m.has_audio):
        hits = service.search_audio(m.path, top=20)
        own = [h.score for h in hits if h.media_id == m.id]
        if not own or own[0] < hits[0].score - 1e-6:
            lost.append(f"{m.display_path}: {hits[0].display_path} first")
    assert not lost, lost


def test_query_windows_are_the_stored_windows(shipped_catalog):
    """The query vectors of a catalogued sound are its stored window vectors (to float error).

    Catches a query cut on other spans (another window, stride or length cap) or decoded,
    padded or normalised otherwise than the indexer does."""
    service = shipped_catalog
    (m,) = [m for m in service.catalog.media() if m.path.endswith("start01.ogg")]  # 8.5 s: 5 windows
    stored = np.stack([service.catalog.embedding(w.id, "audio") for w in service.catalog.windows(m.id)])
    assert np.allclose(service.embed_audio(m.path), stored, atol=1e-5)
