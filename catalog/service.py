"""Search a catalog by text, by a sound, or by a window already in it.

    service = SearchService.open("library.db")        # the model the catalog records
    for hit in service.search_text("a dog barks", top=5, per_file=True):
        print(hit.score, hit.display_path, hit.start, hit.end, hit.modality)

Every window has a vector per modality it has (video, audio), all in one joint space; a query
is one vector in that space, or several: a query sound is cut into windows as a catalogued file
is (catalog.windows), one vector each, and a stored window scores its best cosine with any of
them (so a sound in the catalog finds its own windows first, at cosine 1). `kind` picks which
windows' vectors compete: "video", "audio" or "any" (both, each window once per modality it
has, the two lists interleaved by rank: see fuse_by_rank). Scores are cosine similarities.

The vectors of each modality are held in memory as one matrix (see search.py), loaded on first
use and reloaded when the catalog's generation counter says something was written since; a
modality with an approximate index beside the catalog (ann.py, built by `vlsa index` from
ANN_MIN_VECTORS vectors) is searched through it instead, and its matrix is never loaded: what
the app shows besides the hits reads one file's rows (file_windows) or a sample (all_scores).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from catalog.ann import ANN_MIN_VECTORS, AnnIndex
from catalog.ann import stamp as ann_stamp
from catalog.indexer import BATCH_SIZE
from catalog.model import model_for_catalog
from catalog.paths import display_path
from catalog.search import MatrixIndex, build_index, kept
from catalog.store import WINDOW_MODALITIES, Catalog, CatalogError, NotFound
from catalog.windows import file_windows, iter_windows, plan_windows
from vlsa.api import VLSA
from vlsa.media import MediaError, probe, require_finite

KINDS = ("any", *WINDOW_MODALITIES)
MAX_QUERY_SECONDS = 30.0  # of a query sound, only windows starting this early: 30 s says enough
# Tries of one modality's search when a hit's window is deleted before it is read (the deletion
# moves the generation, so the next try searches the catalog as it is then).
SEARCH_TRIES = 3
FILTERS_KEPT = 8  # filters whose files are kept between queries (a few KB each at 100,000 files)
# Windows whose scores stand for the library's where the approximate index serves a modality (see
# all_scores): the mean and standard deviation of 4,096 scores are within about 2% of every
# window's, for 8 MB at 512 dims, where the whole matrix is 20 GB at 10M windows.
SCORE_SAMPLE = 4096


@dataclass(frozen=True)
class Hit:
    window_id: int
    media_id: int
    path: str  # opens the file; may hold surrogate escapes (see display_path)
    start: float
    end: float
    modality: str  # whose vector matched: 'video' | 'audio'
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
        self._indexes: dict[str, tuple[int, MatrixIndex]] = {}  # modality -> (generation, index)
        self._ann: dict[str, tuple[tuple, AnnIndex | None]] = {}  # modality -> ((generation, file stamp), index)
        self._filters: tuple[int, dict[tuple, np.ndarray]] = (-1, {})  # (generation, filters -> media ids)
        self._samples: dict[str, tuple[int, np.ndarray]] = {}  # modality -> (generation, SCORE_SAMPLE vectors)
        self._stats: tuple[int, dict[str, float]] = (-1, {})  # (generation, Catalog.stats())

    @classmethod
    def open(cls, db: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
             backend: str = "numpy", exact_below: int | None = ANN_MIN_VECTORS) -> SearchService:
        return cls(Catalog(db, read_only=True), checkpoint=checkpoint, backend=backend, exact_below=exact_below)

    @property
    def model(self) -> VLSA:
        if self._model is None:
            self._model = model_for_catalog(self.catalog, self.checkpoint)
        return self._model

    # --- queries ---

    def search_text(self, text: str, **options) -> list[Hit]:
        """Windows that match a description. Options: see search_vector."""
        if not text.strip():
            raise ValueError("empty text query")
        return self.search_vector(self.model.embed_text([text])[0].numpy(), **options)

    def search_audio(self, audio: str | os.PathLike | torch.Tensor, **options) -> list[Hit]:
        """Windows that match any window of a sound: a file (its first MAX_QUERY_SECONDS) or a
        mono waveform at the model's sample rate. Options: see search_vector."""
        return self.search_vector(self.embed_audio(audio), **options)

    def search_like(self, window_id: int, **options) -> list[Hit]:
        """Windows like a window of the catalog (itself left out): each modality is searched with
        the window's own vector of that modality, or its other one where it has only one."""
        own = {m: self.catalog.embedding(window_id, m) for m in WINDOW_MODALITIES}
        own = {m: v for m, v in own.items() if v is not None}
        if not own:
            self.catalog.window(window_id)  # raises NotFound for an unknown id
            raise CatalogError(f"window {window_id} has no stored vectors")
        queries = {m: own.get(m, next(iter(own.values()))) for m in WINDOW_MODALITIES}
        return self.search_vector(queries, exclude=(window_id,), **{"fuse": "rank", **options})

    def search_vector(self, query: np.ndarray | dict[str, np.ndarray], kind: str = "any", top: int = 10,
                      per_file: bool = False, folder: str | os.PathLike | None = None,
                      min_duration: float | None = None, max_duration: float | None = None,
                      exclude: Sequence[int] = (), fuse: str = "score") -> list[Hit]:
        """The `top` best windows for a query (E,) or (N, E), or one per modality; against N
        vectors a window scores its best cosine with any of them.

        fuse (kind "any"): "score", the two modalities' hits merged on their cosines, for one
        query vector embedded once and scored against both (a text or a sound); "rank", merged by
        rank (fuse_by_rank), for find-similar, whose picture and sound queries are two different
        vectors whose cosines are not on one scale.

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
        ranked = []  # one list per modality, best first
        for modality in WINDOW_MODALITIES if kind == "any" else (kind,):
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

    def all_scores(self, query: np.ndarray, modality: str) -> np.ndarray:
        """float32: the library's scores of one modality for a query (E,) or (N, E), as
        search_vector scores them (a window's best cosine with any row): what a hit's score is
        compared with (app/scores.py, the one place that reads them). Every window's where the
        modality is scanned exactly; where the approximate index serves it, those of the
        sample_vectors (the whole matrix is what that index exists not to hold)."""
        matrix = self.sample_vectors(modality) if self.ann(modality) is not None else self.index(modality).matrix
        if len(matrix) == 0:
            return np.zeros(0, np.float32)
        return (matrix @ np.atleast_2d(_unit(query)).T).max(axis=1)

    def sample_vectors(self, modality: str) -> np.ndarray:
        """float32 (<= SCORE_SAMPLE, E): the vectors of windows spread evenly over the ids of a
        modality served by its approximate index, read in parallel once per catalog generation."""
        generation, ann = self.catalog.generation(), self.ann(modality)
        cached = self._samples.get(modality)
        if cached is None or cached[0] != generation:
            ids = np.unique(np.linspace(1, max(self.catalog.max_window_id(), 1), SCORE_SAMPLE).round().astype(np.int64))
            cached = self._samples[modality] = (generation, ann.reads.load_vectors(modality, ids)[2])
        return cached[1]

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
        """Per modality, the (E,) row of `query` that found `hit` (the one nearest the hit's own
        vector): a hit's heatmaps are drawn for the query window that matched it."""
        own = self.catalog.embedding(hit.window_id, hit.modality)
        if own is None:
            raise NotFound(f"{self.catalog.path}: window {hit.window_id} is no longer in the catalog")
        return {m: matching_row(q, own) for m, q in query.items()}

    # --- query embeddings ---

    def embed_audio(self, audio: str | os.PathLike | torch.Tensor) -> np.ndarray:
        """float32 (N, E), L2-normalised: one vector per window of the query sound's first
        MAX_QUERY_SECONDS, cut on the catalog's window and stride and decoded and embedded by the
        indexer's own functions, so a catalogued sound gives its stored vectors."""
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
        batches = waves.split(BATCH_SIZE)  # a short stride: many windows
        return _unit(torch.cat([model.embed_decoded("audio", batch) for batch in batches]).numpy())


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
    pictures (issue 33). Ranks are on one scale. Ranks rather than scores
    standardised per query (app/scores.py, Spread): a rank needs only the hits already found,
    through the approximate index too, where a standard deviation needs every window's score (the
    full scan that index exists to avoid). A window or file found by both modalities is not
    counted twice (as reciprocal rank fusion sums): a sound-only file found by its own sound, at
    cosine 1 and rank 1, stays first, ahead of a file that two modalities rank second.
    """
    entries = [(rank, -hit.score, hit.window_id, hit.modality, hit)
               for hits in ranked for rank, hit in enumerate(hits)]
    return [entry[-1] for entry in sorted(entries, key=lambda entry: entry[:4])]


def matching_row(query: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The row of a query (E,) or (N, E) nearest to `vector` (E,): for a hit of a query of several
    windows, the one that found it (its heatmaps are drawn for that row)."""
    rows = np.asarray(query, np.float32).reshape(-1, len(vector))
    return rows[int(np.argmax(rows @ vector))]


def _unit(v: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1; a zero vector left as it is."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1).astype(np.float32)
