"""Pretrained sound knowledge: a sound-effects encoder that ships with its weights in a PyPI package.

aisfx (ISMIR 2022, "Representation Learning for the Automatic Indexing of Sound Effects
Libraries"; model CC BY 4.0) is a 9-layer CNN of the PANNs family trained on professional
sound-effects libraries: 96-band log-mel maps at 44.1 kHz in, a 512-wide embedding per 2-s block
out. Its wheel carries `aisfx/models/checkpoint.pth`; we read only that file (hash-checked,
vlsa/pretrained.py) and only its `embedding_net.*` weights, into our own copy of the trunk below,
and compute its front end with torch: the package's own code pins numpy 1.23 and librosa 0.9.2,
and its librosa path feeds mel bands where the network wants time. As with the text tower
(vlsa/text_tower.py), two uses, both set in `AudioConfig`:

- `audio.tower`: the frozen encoder *is* the audio tower; its embedding goes through a small
  trained adapter into the joint space.
- `audio.teacher`: the shared encoder's own audio path is trained to reproduce the encoder's
  similarities between sounds (`vlsa.losses.similarity_distillation`).

With `audio.tower`, a sound has two vectors: the joint one (through the adapter, what words are
matched with) and the tower's own, which groups same-kind sounds better than its image through the
adapter does (docs/REAL_MEDIA.md, "Stage 6"); search by a sound example and "find similar"
compare sounds by the latter (TOWER_VECTORS).

The tower reads the waveform at 44.1 kHz, not the model's spectrogram: `tower_input` makes that
input from decoded sound, and training batches carry it under TOWER_WAVE.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlsa.pretrained import FrozenOnFirstUse, package_file

if TYPE_CHECKING:
    from vlsa.config import AudioConfig, VLSAConfig

TOWER_WAVE = "tower_wave"  # the batch key of the tower's input: float32 (B, S) at the tower's rate


@dataclass(frozen=True)
class SoundModel:
    package: str  # the importable name of the PyPI package that carries the file
    version: str  # the package version pinned (installed with --no-deps)
    file: str  # the checkpoint inside the package
    sha256: str  # of that file
    width: int  # embedding width: the trunk's last block; its first is width / 8
    sample_rate: int = 44100
    mels: int = 96
    n_fft: int = 2048  # STFT window and size (Hann)
    hop: int = 1024
    block: int = 100  # map frames per embedding (2.3 s), as aisfx's EMB_BLOCK_LENGTH
    block_hop: int = 50  # frames between blocks (aisfx's emb_hop_size 0.5, the paper's 1-s hop)
    log_gain: float = 1e4  # the map is log10(1 + log_gain * mel power)
    map_max: float = 9.457798957824707  # ... divided by this (aisfx's "original" min-max scaling)


PRETRAINED = {
    "aisfx": SoundModel(package="aisfx", version="0.1.2", file="models/checkpoint.pth", width=512,
                        sha256="499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"),
}
PREFIX = "embedding_net."  # the trunk's weights in the checkpoint; the rest are class heads

# The checkpoint pickles numpy scalars and dtypes beside its tensors (the class heads' indices):
# torch.load(weights_only=True) refuses them unless named. aisfx's file names the scalar by its
# numpy 1 path, which numpy 2 moved; a file written under numpy 2 names the new one.
_SCALAR = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
_NUMPY_GLOBALS = [(_SCALAR, "numpy.core.multiarray.scalar"), _SCALAR, np.dtype, type(np.dtype(np.int64))]


# --- input plumbing: which waveform the model's audio embedding reads -------------------------


def tower_name(config: VLSAConfig) -> str | None:
    """The pretrained sound model whose input a training batch carries (tower or teacher)."""
    a = config.audio
    return a.tower if a.tower != "shared" else a.teacher


def tower_rate(config: VLSAConfig) -> int | None:
    """The rate a training sample's sound is decoded at a second time (vlsa.media.load_clip's
    tower_rate), for the tower or the teacher; None without either."""
    name = tower_name(config)
    return None if name is None else PRETRAINED[name].sample_rate


def input_rate(config: VLSAConfig) -> int:
    """The rate the model's audio embedding reads waveforms at: the tower's (44.1 kHz) when it has
    one, else its front end's. The API, the catalog's windows and the search service decode at it."""
    a = config.audio
    return PRETRAINED[a.tower].sample_rate if a.tower != "shared" else a.sample_rate


def input_samples(config: VLSAConfig) -> int:
    """Samples of one clip's waveform at input_rate."""
    a = config.audio
    return tower_samples(a.tower, a) if a.tower != "shared" else a.num_samples


def tower_samples(name: str, audio: AudioConfig) -> int:
    return round(audio.clip_seconds * PRETRAINED[name].sample_rate)


def tower_input(wave: torch.Tensor, rate: int, config: VLSAConfig) -> torch.Tensor:
    """What the tower (or teacher) reads, from decoded mono sound (..., S) at `rate` Hz: float32
    (..., tower_samples) at the tower's rate, one clip from the start, zero-padded. Sound decoded
    at another rate (a shard's, an augmented clip's) is resampled: it reaches the tower without
    the band above its own Nyquist frequency."""
    import torchaudio

    name = tower_name(config)
    target = PRETRAINED[name].sample_rate
    wave = wave.float()
    if rate != target:
        wave = torchaudio.functional.resample(wave, rate, target)
    size = tower_samples(name, config.audio)
    return F.pad(wave[..., :size], (0, max(0, size - wave.shape[-1])))


# --- the front end ----------------------------------------------------------------------------


class TowerSpectrogram(nn.Module):
    """Waveforms (B, S) at the model's rate -> log-mel maps (B, frames, mels), time first as the
    trunk reads them, as aisfx's librosa front end computes them (before its final scaling):
    each waveform peak-normalised, power STFT (Hann, centred, zero-padded edges), HTK mel filters
    each normalised to sum 1 (librosa's norm=1), log10(1 + log_gain * mel)."""

    def __init__(self, spec: SoundModel):
        super().__init__()
        import torchaudio

        self.spec = spec
        filters = torchaudio.functional.melscale_fbanks(spec.n_fft // 2 + 1, 0.0, spec.sample_rate / 2, spec.mels,
                                                        spec.sample_rate, norm=None, mel_scale="htk")
        self.register_buffer("filters", filters / filters.sum(0, keepdim=True), persistent=False)  # (freqs, mels)
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        peak = wave.abs().amax(dim=-1, keepdim=True)
        wave = wave / torch.where(peak > 0, peak, torch.ones_like(peak))  # silence stays silence
        with torch.autocast(device_type=wave.device.type, enabled=False):
            stft = torch.stft(wave.float(), self.spec.n_fft, self.spec.hop, window=self.window, center=True,
                              pad_mode="constant", return_complex=True)
            power = stft.real ** 2 + stft.imag ** 2  # (B, freqs, frames)
            mel = power.transpose(1, 2) @ self.filters  # (B, frames, mels)
            return torch.log10(1 + self.spec.log_gain * mel)


# --- the trunk: aisfx's EmbeddingNet("max", ks=3, strd=1, hl1=width/8), from DCASE's Cnn_9layers ---


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, 2) if pool else x


class EmbeddingTrunk(nn.Module):
    """Maps (N, frames, mels) -> (N, width): four conv blocks (max-pooled 2x2 after the first
    three, so at least 8 frames), the mean over frequency, then the max over time."""

    def __init__(self, width: int):
        super().__init__()
        widths = [1, width // 8, width // 4, width // 2, width]
        for i in range(4):  # attribute names as the checkpoint's keys
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None]  # (N, 1, frames, mels)
        for i in range(4):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=i < 3)
        return x.mean(dim=3).amax(dim=2)


@functools.lru_cache(maxsize=4)
def checkpoint_file(name: str) -> Path:
    """The pinned checkpoint of `name`, hash-checked (ValueError, one line, otherwise)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained sound model {name!r}; known: {', '.join(PRETRAINED)}")
    spec = PRETRAINED[name]
    return package_file(spec.package, spec.version, spec.file, spec.sha256, f"sound model {name!r}")


def load_trunk(name: str) -> EmbeddingTrunk:
    """The frozen trunk of `name`, its weights read from the pinned checkpoint (tensors and numpy
    scalars only: never weights_only=False, which would run whatever the file's pickle says)."""
    with torch.serialization.safe_globals(_NUMPY_GLOBALS):
        state, _heads = torch.load(checkpoint_file(name), map_location="cpu", weights_only=True)
    trunk = EmbeddingTrunk(PRETRAINED[name].width)
    trunk.load_state_dict({k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)})
    return trunk.requires_grad_(False).eval()


def split_blocks(maps: torch.Tensor, block: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (B, T, M) -> blocks (B, n, block, M) every `hop` frames, as aisfx's blocking with
    drop_partial_block: a trailing partial block is dropped, a map shorter than one block is
    zero-padded (silence) to one. Also (B, n) bool: blocks holding any sound. A clip's zero
    padding (a sound shorter than the model's clip) makes whole blocks of silence, left out of
    the mean, so a 1-s sound embeds the same in a 2-s and a 5-s clip."""
    maps = F.pad(maps, (0, 0, 0, max(0, block - maps.shape[1])))
    blocks = maps.unfold(1, block, hop).transpose(2, 3)  # (B, n, block, M)
    return blocks, blocks.flatten(2).amax(dim=2) > 0


def block_spans(spec: SoundModel, n: int) -> torch.Tensor:
    """float64 (n, 2): (start, end) seconds from the waveform's start of the first n blocks
    split_blocks makes: block k is map frames [k * block_hop, k * block_hop + block), and frame j
    of the centred STFT is centred on sample j * hop."""
    first = torch.arange(n, dtype=torch.float64)[:, None] * spec.block_hop
    frames = torch.cat([first, first + spec.block], dim=1)
    return frames * spec.hop / spec.sample_rate


class SoundEncoder(FrozenOnFirstUse):
    """A frozen pretrained sound encoder: waveforms (B, S) at its rate -> (B, width) unit vectors,
    the mean of its 2-s blocks' embeddings. Always in eval mode and without gradients.

    Read on first use (FrozenOnFirstUse): a model that embeds only video and words never reads
    it."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.spec = name, PRETRAINED[name]
        self.width = self.spec.width
        self.spectrogram = TowerSpectrogram(self.spec)  # no learned weights: nothing in the state dict

    def load_network(self) -> nn.Module:
        return load_trunk(self.name)

    @property
    def trunk(self) -> EmbeddingTrunk:
        return self.network

    @torch.no_grad()
    def embed_blocks(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, S) -> each block's trunk embedding (B, n, width), not normalised, and
        (B, n) bool: blocks holding any sound (split_blocks). Block k's seconds: block_spans."""
        maps = self.spectrogram(wave) / self.spec.map_max
        blocks, sounding = split_blocks(maps, self.spec.block, self.spec.block_hop)
        B, n = sounding.shape
        return self.trunk(blocks.flatten(0, 1)).view(B, n, -1).float(), sounding

    @torch.no_grad()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        embeddings, sounding = self.embed_blocks(wave)
        weights = (sounding | ~sounding.any(dim=1, keepdim=True)).float()  # all silent: all blocks
        pooled = (embeddings * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        return F.normalize(pooled, dim=-1)
