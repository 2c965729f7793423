"""Public datasets in their own layouts, turned into our manifest (`vlsa data import FORMAT`).

Each module reads one family's metadata and yields `Clip`s (or a `Skip` with its reason for a
metadata row that cannot be used); `common.import_clips` finds each clip's local file, probes it,
places its segment and writes the manifest. webdataset tar shards are not converted: training and
evaluation read them where they lie (`webdataset.TarClipDataset`).
"""

from __future__ import annotations

# FORMAT -> "module:function" yielding that format's clips; imported only when it is used
FORMATS = {
    "audioset": "train.datasets.audioset:audioset_clips",
    "vggsound": "train.datasets.audioset:vggsound_clips",
    "howto100m": "train.datasets.howto100m:howto100m_clips",
    "audiocaps": "train.datasets.captions:audiocaps_clips",
    "clotho": "train.datasets.captions:clotho_clips",
    "msrvtt": "train.datasets.msrvtt:msrvtt_clips",
    "lsmdc": "train.datasets.lsmdc:lsmdc_clips",
    "youcook2": "train.datasets.youcook2:youcook2_clips",
    "webvid": "train.datasets.webvid:webvid_clips",
    "webdataset": "",  # read in place: train/eval take the folder of tars as --manifest
}
