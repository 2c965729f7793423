"""Search a catalog by text, by a sound, or by a window already in it.

    service = SearchService.open("library.db")        # the model the catalog records
    for hit in service.search_text("a dog barks", top=5, per_file=True):
        print(hit.score, hit.display_path, hit.start, hit.end, hit.modality)

Every window has a vector per modality it has (video, audio), all in one joint space; a query
is one vector in that space, or several: a query sound is cut into windows as a catalogued file
is (catalog.windows), one vector each, and a stored window scores its best cosine with any of
them (so a sound in the catalog finds its own windows first, at cosine 1). `kind` picks which
windows' vectors compete: "video", "audio" or "any" (both, each window once per modality it
has, the two lists merged: see search_vector's `fuse`). Scores are cosine similarities.

A sound compared with sounds (a query sound, "find similar") is compared by the best vectors the
catalog has of them (vlsa.vectors.example_modality): with a checkpoint that has a pretrained
audio tower, the tower's own (TOWER_VECTORS), which group same-kind sounds better than the joint
ones; words are always matched with the joint vectors. Such hits have modality TOWER_VECTORS:
their cosines are on the tower's scale ("sound->sound (tower)", app/scores.py reads them apart).

The vectors of each modality are held in memory as one matrix (see search.py), loaded on first
use and reloaded when the catalog's generation counter says something was written since; a
modality with an approximate index beside the catalog (ann.py, built by `vlsa index` from
ANN_MIN_VECTORS vectors) is searched through it instead, and its matrix is never loaded: what
the app shows besides the hits reads one file's rows (file_windows), and a hit's words need only
its score (vlsa/calibration.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from catalog import text_export
from catalog.ann import ANN_MIN_VECTORS, AnnIndex
from catalog.ann import stamp as ann_stamp
from catalog.paths import display_path
from catalog.search import MatrixIndex, build_index, kept
from catalog.store import BATCH_SIZE, WINDOW_MODALITIES, Catalog, CatalogError, NotFound
from vlsa.calibration import Calibration, match_words, read_calibration
from vlsa.vectors import TOWER_VECTORS, example_modality

if TYPE_CHECKING:  # imported where used: a text search through the catalog's export needs no torch
    import torch

    from vlsa.api import VLSA
    from vlsa.text_query import TextQueryEncoder

log = logging.getLogger(__name__)
KINDS = ("any", *WINDOW_MODALITIES)
MAX_QUERY_SECONDS = 30.0  # of a query sound, only windows starting this early: 30 s says enough
# Tries of one modality's search when a hit's window is deleted before it is read (the deletion
# moves the generation, so the next try searches the catalog as it is then).
SEARCH_TRIES = 3
FILTERS_KEPT = 8  # filters whose files are kept between queries (a few KB each at 100,000 files)


@dataclass(frozen=True)
class Hit:
    window_id: int
    media_id: int
    path: str  # opens the file; may hold surrogate escapes (see display_path)
    start: float
    end: float
    modality: str  # whose vector matched: 'video' | 'audio' | 'audio_tower' (a sound, by the tower's own)
    score: float  # cosine similarity to the query

    @property
    def display_path(self) -> str:
        return display_path(self.path)

    def to_dict(self) -> dict:
        """JSON-ready: the path with replacement characters where the name is not UTF-8."""
        return {**asdict(self), "path": self.display_path, "score": round(self.score, 6)}


class SearchService:
    """Queries against one catalog with the model that built it; used on the thread that opened
    the catalog (the rule is in catalog/store.py, Catalog)."""

    def __init__(self, catalog: Catalog, model: VLSA | None = None, backend: str = "numpy",
                 checkpoint: str | os.PathLike | None = None, exact_below: int | None = ANN_MIN_VECTORS):
        """`model` None: loaded on the first query that needs one (search_like does not), from
        `checkpoint` or else the checkpoint the catalog records. `exact_below`: a modality with
        fewer vectors is scanned exactly even where an approximate index exists; None: always."""
        self.catalog, self.backend, self.checkpoint, self.exact_below = catalog, backend, checkpoint, exact_below
        self._model = model
        self._calibration: tuple[Calibration | None] | None = None  # read on first use
        self._indexes: dict[str, tuple[int, MatrixIndex]] = {}  # modality -> (generation, index)
        self._ann: dict[str, tuple[tuple, AnnIndex | None]] = {}  # modality -> ((generation, file stamp), index)
        self._filters: tuple[int, dict[tuple, np.ndarray]] = (-1, {})  # (generation, filters -> media ids)
        self._stats: tuple[int, dict[str, float]] = (-1, {})  # (generation, Catalog.stats())

    @classmethod
    def open(cls, db: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
             backend: str = "numpy", exact_below: int | None = ANN_MIN_VECTORS) -> SearchService:
        return cls(Catalog(db, read_only=True), checkpoint=checkpoint, backend=backend, exact_below=exact_below)

    @property
    def model(self) -> VLSA:
        if self._model is None:
            from catalog.model import model_for_catalog

            self._model = model_for_catalog(self.catalog, self.checkpoint)
        return self._model

    @property
    def calibration(self) -> Calibration | None:
        """What the scores of the catalog's model mean (vlsa/calibration.py): the calibration.json
        of the checkpoint folder, if made for the weights the catalog records; None without one.
        Read once; needs neither the model nor the vectors."""
        if self._calibration is None:
            settings = self.catalog.settings
            folder = self.checkpoint if self.checkpoint is not None else settings and settings.checkpoint
            self._calibration = (read_calibration(folder, settings.fingerprint) if settings else None,)
        return self._calibration[0]

    def words(self, hit: Hit, searched_by: str) -> str:
        """A hit's strength in words, for a search with a query of modality `searched_by` ("text",
        "audio" or "video"): see vlsa.calibration.match_words."""
        return match_words(hit.score, f"{searched_by}->{hit.modality}", self.calibration)

    # --- queries ---

    def search_text(self, text: str, **options) -> list[Hit]:
        """Windows that match a description. Options: see search_vector."""
        if not text.strip():
            raise ValueError("empty text query")
        return self.search_vector(self.embed_text(text), **options)

    def search_audio(self, audio: str | os.PathLike | torch.Tensor, **options) -> list[Hit]:
        """Windows that match any window of a sound: a file (its first MAX_QUERY_SECONDS) or a
        mono waveform at the model's sample rate. Options: see search_vector."""
        return self.search_vector(self.sound_query(audio), **options)

    def search_like(self, window_id: int, **options) -> list[Hit]:
        """Windows like a window of the catalog (itself left out), searched with like_query."""
        queries, _ = self.like_query(window_id)
        return self.search_vector(queries, exclude=(window_id,), **{"fuse": "rank", **options})

    def like_query(self, window_id: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Find-similar's query for a window of the catalog: per modality searched, the vector it is
        searched with (the window's own of that modality, or its other one where it has only one;
        and its sound, where the catalog compares sounds by the tower's vectors, its own tower
        vector: sound_modality), and that vector's modality (what kind of search it is, for the
        words of its hits)."""
        own = {m: self.catalog.embedding(window_id, m) for m in WINDOW_MODALITIES}
        own = {m: v for m, v in own.items() if v is not None}
        if not own:
            self.catalog.window(window_id)  # raises NotFound for an unknown id
            raise CatalogError(f"window {window_id} has no stored vectors")
        sources = {m: m if m in own else next(iter(own)) for m in WINDOW_MODALITIES}
        query = {m: own[source] for m, source in sources.items()}
        sound = self.sound_modality()
        if sound != "audio" and "audio" in own:
            query[sound], sources[sound] = self.catalog.embedding(window_id, sound), "audio"
        return query, sources

    def sound_modality(self) -> str:
        """The stored vectors a sound is compared with other sounds by (example_modality of the
        catalog's): TOWER_VECTORS once every window with sound has one, else "audio"."""
        return example_modality(self.catalog.sound_modalities())

    def search_vector(self, query: np.ndarray | dict[str, np.ndarray], kind: str = "any", top: int = 10,
                      per_file: bool = False, folder: str | os.PathLike | None = None,
                      min_duration: float | None = None, max_duration: float | None = None,
                      exclude: Sequence[int] = (), fuse: str | None = None) -> list[Hit]:
        """The `top` best windows for a query (E,) or (N, E), or one per modality; against N
        vectors a window scores its best cosine with any of them. A query dict holding
        TOWER_VECTORS (sound_query, like_query) searches the sounds by those.

        fuse (kind "any"): "score", the two modalities' hits merged on their cosines, for one
        query vector embedded once and scored against both (a text, a sound without tower
        vectors); "rank", merged by rank (fuse_by_rank), for find-similar, whose picture and sound
        queries are two different vectors whose cosines are not on one scale, and for a query
        whose sounds are searched by tower vectors (another space). None: "rank" for a query
        holding TOWER_VECTORS, else "score".

        kind: "video", "audio" or "any"; per_file: only each file's best window; folder: only
        files under it; min_duration / max_duration: only files that long (seconds); exclude:
        window ids to leave out.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if top < 1:
            raise ValueError(f"top must be at least 1, not {top}")
        queries = query.values() if isinstance(query, dict) else [query]
        if not all(np.isfinite(q).all() for q in queries):
            raise ValueError("the query vector holds NaN or infinity")
        towered = isinstance(query, dict) and TOWER_VECTORS in query
        fuse = fuse or ("rank" if towered else "score")
        ranked = []  # one list per modality, best first
        for modality in WINDOW_MODALITIES if kind == "any" else (kind,):
            if modality == "audio" and towered:
                modality = TOWER_VECTORS
            q = query[modality] if isinstance(query, dict) else query
            ranked.append(self._search_modality(modality, np.atleast_2d(_unit(q)), top, per_file,
                                                (folder, min_duration, max_duration), exclude))
        if fuse not in FUSIONS:
            raise ValueError(f"fuse must be one of {', '.join(FUSIONS)}, not {fuse!r}")
        hits = fuse_by_rank(ranked) if fuse == "rank" else fuse_by_score(ranked)
        if per_file:  # across modalities too: a file's best window of either kind
            seen: set[int] = set()
            hits = [h for h in hits if not (h.media_id in seen or seen.add(h.media_id))]
        return hits[:top]

    def _search_modality(self, modality: str, queries: np.ndarray, top: int, per_file: bool,
                         filters: tuple, exclude: Sequence[int]) -> list[Hit]:
        """The `top` best windows of one modality for the query rows (N, E), each window scored
        by its best row, as Hits read from the catalog.

        The vectors searched (in memory, or the index and its delta) are the catalog as it was a
        moment before the hits are looked up; a window deleted in between (an indexer writing
        while we search) has no row to show. Such a search runs again on the catalog as it is
        now, and a window still gone after SEARCH_TRIES is left out: never a crash, never a
        deleted file among the results."""
        for _ in range(SEARCH_TRIES):
            found = self._best_windows(modality, queries, top, per_file, filters, exclude)
            info = self.catalog.hits_info([window_id for _, window_id, _ in found])
            if len(info) == len(found):
                break
        return [Hit(window_id, *info[window_id], modality, -negated)
                for negated, window_id, _ in found if window_id in info]

    def _best_windows(self, modality: str, queries: np.ndarray, top: int, per_file: bool,
                      filters: tuple, exclude: Sequence[int]) -> list[tuple[float, int, int]]:
        """(-score, window_id, media_id) of the `top` best windows of one modality, best first."""
        ann = self.ann(modality)
        index = ann if ann is not None else self.index(modality)
        if len(index) == 0:
            return []
        dim = ann.dim if ann is not None else index.matrix.shape[1]
        if queries.shape[1] != dim:
            raise ValueError(f"query has {queries.shape[1]} dims; the catalog's vectors have {dim}")
        media = self.media_filter(*filters) if any(f is not None for f in filters) else None
        excluded = np.asarray(exclude, np.int64) if exclude else None
        # Exact: a window among the best `top` by its best row is among the best `top` of that row.
        best: dict[int, tuple[float, int, int]] = {}  # window (per file: file) -> (-score, window, file)
        for query in queries:
            for window_id, media_id, score in (ann.top(query, top, media, excluded, per_file) if ann is not None
                                               else index.top_windows(query, top, media, excluded, per_file)):
                key = media_id if per_file else window_id
                best[key] = min(best.get(key, (np.inf, window_id, media_id)), (-score, window_id, media_id))
        return sorted(best.values())[:top]

    def file_windows(self, media_id: int, modality: str) -> MatrixIndex:
        """The stored vectors of one file's windows of one modality (a few rows, by the file's
        index, whatever the catalog's size): what the app's "when in the file" strip scores."""
        return MatrixIndex(*self.catalog.load_vectors(modality, media_ids=[media_id]))

    def media_filter(self, folder: str | os.PathLike | None, min_duration: float | None,
                     max_duration: float | None) -> np.ndarray:
        """Catalog.media_filter, kept for the catalog's generation: it walks every file's path
        (0.1 s a query at 10,000 files), and a user runs one filter over many queries."""
        generation = self.catalog.generation()
        if self._filters[0] != generation:
            self._filters = (generation, {})
        key = (None if folder is None else os.fspath(folder), min_duration, max_duration)
        return kept(self._filters[1], key, lambda: self.catalog.media_filter(*key), FILTERS_KEPT)

    def stats(self) -> dict[str, float]:
        """Catalog.stats and "media_seconds" (the indexed files' total duration), kept for the
        catalog's generation: they scan every window, vector and file (seconds at 10M windows),
        and the app shows them on every page load."""
        generation = self.catalog.generation()
        if self._stats[0] != generation:
            seconds = sum(m.duration or 0.0 for m in self.catalog.media(status="ok"))
            self._stats = (generation, {**self.catalog.stats(), "media_seconds": seconds})
        return self._stats[1]

    def index(self, modality: str) -> MatrixIndex:
        """The in-memory vectors of one modality, reloaded when the catalog changed."""
        generation = self.catalog.generation()
        cached = self._indexes.get(modality)
        if cached is None or cached[0] != generation:
            cached = (generation, build_index(self.backend, *self.catalog.load_vectors(modality)))
            self._indexes[modality] = cached
        return cached[1]

    def ann(self, modality: str) -> AnnIndex | None:
        """The approximate index of one modality, if one is on disk and the modality has at least
        `exact_below` vectors; re-read when the catalog or the index changed."""
        version = (self.catalog.generation(), ann_stamp(self.catalog, modality))
        cached = self._ann.get(modality)
        if cached is None or cached[0] != version:
            index = None if self.exact_below is None else AnnIndex.open(self.catalog, modality, cached and cached[1])
            if index is not None and len(index) < self.exact_below:
                index = None
            cached = self._ann[modality] = (version, index)
        return cached[1]

    def query_of_hit(self, query: dict[str, np.ndarray], hit: Hit) -> dict[str, np.ndarray]:
        """Per modality, the row of `query` from the query window that found `hit` (its row of
        the hit's modality nearest the hit's own vector; a query sound's modalities hold one row
        per window, in the same order): a hit's heatmaps are drawn for the window that matched."""
        own = self.catalog.embedding(hit.window_id, hit.modality)
        if own is None:
            raise NotFound(f"{self.catalog.path}: window {hit.window_id} is no longer in the catalog")
        rows = np.asarray(query[hit.modality], np.float32).reshape(-1, len(own))
        found = int(np.argmax(rows @ own))
        return {m: _rows(q)[found if len(_rows(q)) == len(rows) else 0] for m, q in query.items()}

    # --- query embeddings ---

    def embed_text(self, text: str) -> np.ndarray:
        """float32 (E,): the words' vector, through the catalog's text export where there is one
        for the catalog's model (no torch, no model to load: catalog/text_export.py), else the
        model. Not the export when a model was given or named: that is the model to use."""
        if self._model is None and self.checkpoint is None and self.text_encoder is not None:
            vector = self.text_encoder.embed([text])[0]
            # The export is a file beside the catalog, which anyone who can write there can replace:
            # a vector that is not what the catalog's model gives is not searched with.
            if vector.shape == (self.catalog.settings.embed_dim,) and np.isfinite(vector).all():
                return vector
            log.warning("%s: its text export gave a %s vector; embedding with the model", self.catalog.path,
                        "non-finite" if vector.size == self.catalog.settings.embed_dim else f"{vector.shape}")
        return self.model.embed_text([text])[0].numpy()

    @cached_property
    def text_encoder(self) -> TextQueryEncoder | None:
        """The catalog's text export for the model that made its vectors, or None where there is none."""
        settings = self.catalog.settings
        return None if settings is None else text_export.open_for(self.catalog.path, settings.fingerprint)

    def embed_audio(self, audio: str | os.PathLike | torch.Tensor) -> np.ndarray:
        """float32 (N, E), L2-normalised: the joint vectors of sound_query."""
        return self.sound_query(audio)["audio"]

    def sound_query(self, audio: str | os.PathLike | torch.Tensor) -> dict[str, np.ndarray]:
        """The query of a sound: float32 (N, E) rows, L2-normalised, one per window of its first
        MAX_QUERY_SECONDS, for "video" and "audio" (the joint vectors); where the catalog compares
        sounds by tower vectors (sound_modality), those too, (N, width), from the same run of the
        tower. Cut on the catalog's window and stride and decoded and embedded by the indexer's
        own functions, so a catalogued sound gives its stored vectors."""
        import torch

        from catalog.windows import file_windows, iter_windows, plan_windows
        from vlsa.media import MediaError, probe, require_finite

        model, settings = self.model, self.catalog.settings
        if isinstance(audio, torch.Tensor):
            require_finite(audio, "the query sound")
            audio = audio.float().reshape(-1)
            spans = plan_windows(len(audio) / model.audio_rate, settings.window, settings.stride)
            if not spans:
                raise MediaError("the query sound is empty")
        else:
            audio = os.fspath(audio)
            spans = file_windows(probe(audio), settings.window, settings.stride)
        spans = [(start, end) for start, end in spans if start < MAX_QUERY_SECONDS]
        waves = torch.stack([w.wave for w in iter_windows(audio, spans, model.config, settings.window, False, True)])
        vectors = [model.embed_decoded_all("audio", batch) for batch in waves.split(BATCH_SIZE)]  # a short stride: many windows
        joint = _unit(torch.cat([v["audio"] for v in vectors]).numpy())
        query = {"video": joint, "audio": joint}
        sound = self.sound_modality()
        if sound != "audio" and sound in vectors[0]:
            query[sound] = _unit(torch.cat([v[sound] for v in vectors]).numpy())
        return query


FUSIONS = ("score", "rank")


def fuse_by_score(ranked: Sequence[list[Hit]]) -> list[Hit]:
    """One list from each modality's hits, best cosine first (then the lower window id)."""
    return sorted((hit for hits in ranked for hit in hits), key=lambda hit: (-hit.score, hit.window_id, hit.modality))


def fuse_by_rank(ranked: Sequence[list[Hit]]) -> list[Hit]:
    """One list from each modality's hits (each best first), ordered by each hit's rank in its own
    modality's list; at equal ranks the higher cosine first, then the lower window id.

    For find-similar: a window's picture vector and its sound vector are two queries whose cosines
    are not on one scale: the picture vector scores most of a library of look-alike pictures
    higher than the sound vector scores the best sound, so a merge on the raw cosine returned only
    pictures (issue 33). Ranks are on one scale. Ranks rather than calibrated
    scores (vlsa/calibration.py): a checkpoint may have no calibration, and a rank needs nothing
    but the hits already found. A window or file found by both modalities is not
    counted twice (as reciprocal rank fusion sums): a sound-only file found by its own sound, at
    cosine 1 and rank 1, stays first, ahead of a file that two modalities rank second.
    """
    entries = [(rank, -hit.score, hit.window_id, hit.modality, hit)
               for hits in ranked for rank, hit in enumerate(hits)]
    return [entry[-1] for entry in sorted(entries, key=lambda entry: entry[:4])]


def _rows(query: np.ndarray) -> np.ndarray:
    """A query (E,) or (N, E) as rows (N, E)."""
    return np.atleast_2d(np.asarray(query, np.float32))


def _unit(v: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1; a zero vector left as it is."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1).astype(np.float32)
