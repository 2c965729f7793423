"""LSMDC: movie clips with one audio-description sentence each.

Metadata (`LSMDC16_annos_training.csv`, `..._val.csv`, `..._test.csv`, the challenge's
`LSMDC16_challenge_1000_publictect.csv`: pass `--split test`): tab-separated, no header:
`CLIP_ID  start_aligned  end_aligned  start_extracted  end_extracted  sentence`. Each clip is its
own file, `MOVIE/CLIP_ID.avi` (MOVIE: the clip id up to its last "_"), anywhere under --media.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_rows, split_from_name

SENTENCE_COLUMN = 5


def lsmdc_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        split = opts.split or split_from_name(source)
        for cells in csv_rows(source, delimiter="\t"):
            if len(cells) <= SENTENCE_COLUMN or not cells[0]:
                yield Skip("bad row")
                continue
            clip_id, sentence = cells[0], cells[SENTENCE_COLUMN]
            if not sentence:
                yield Skip("no caption")
                continue
            yield Clip(opts.index.find(clip_id), [sentence], split, extra={"clip_id": clip_id})
