"""`VLSA`: the network plus what turns media and words into embeddings, Hugging Face style.

    model = VLSA.from_preset("tiny")                     # or VLSA.from_pretrained("ckpt/")
    model.save_pretrained("ckpt/")
    text = model.embed_text(["a red circle bounces"])     # (1, E), L2-normalised, on CPU
    clips = model.embed_video(["a.mp4", ("b.mp4", 10.0, 12.0)])
    heat = model.video_patch_map(text[0], "a.mp4")      # (frames, h, w) each patch's share of the match
    sound = model.audio_patch_map(text[0], "a.wav")     # (f, t); with an audio tower audio_block_map:
                                                        # the match of each 2-s block, in time only

An item is a path, a `(path, start_s, end_s)` tuple or an already-decoded tensor: video as uint8
frames (T, 3, H, W) at the preset's size (float frames are taken as already normalised); audio as
a mono waveform (S,) at `model.audio_rate` (the front end's, or a pretrained audio tower's 44.1 kHz)
or, without an audio tower, a normalised map (F, M).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from vlsa import checkpoint
from vlsa.audio import at_rate, build_frontend
from vlsa.audio_tower import block_spans, input_rate, tower_input
from vlsa.config import AudioConfig, preset_config
from vlsa.media import MediaError, load_clip, normalize_frames, require_finite
from vlsa.model import VLSAModel
from vlsa.tokenizer import build_tokenizer

Item = str | os.PathLike | tuple | torch.Tensor


class BlockMap(NamedTuple):
    """A query's match with each block an audio tower hears (VLSA.audio_block_map)."""

    similarity: torch.Tensor  # (n,) cosine of the query with the block heard alone
    spans: torch.Tensor  # (n, 2) float64: each block's (start, end) seconds from the clip's start
    sounding: torch.Tensor  # (n,) bool: blocks holding sound; the sound's embedding leaves the rest out


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


class VLSA(VLSAModel):
    # --- construction and checkpoints ---

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VLSA:
        """A fresh model; overrides use dotted keys or double underscores: encoder__depth=2."""
        return cls(preset_config(name, **{k.replace("__", "."): v for k, v in overrides.items()}))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VLSA:
        """Load a checkpoint folder; a config that does not fit the weights is a CheckpointError."""
        model = checkpoint.load_into(cls(checkpoint.load_config(path)), path)
        return model.to(map_location).eval()

    def save_pretrained(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        return checkpoint.save_checkpoint(self.state_dict(), self.config, path, extra)

    def fingerprint(self) -> str:
        """Hash of config and weights: equal for bit-identical models, whatever file they came from."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for key, value in sorted(self.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def audio_rate(self) -> int:
        """The rate waveforms given to the audio methods are read at (vlsa.audio_tower.input_rate)."""
        return input_rate(self.config)

    @property
    def has_audio_tower(self) -> bool:
        return self.config.audio.tower != "shared"

    @cached_property
    def tokenizer(self):
        return build_tokenizer(self.config.text)

    @cached_property
    def frontend(self) -> torch.nn.Module:
        """The spectrogram module, on CPU beside the decoding (it has no learned weights, so it
        stays out of the state dict)."""
        return build_frontend(self.config.audio)

    @cached_property
    def wave_audio_config(self) -> AudioConfig:
        """The front end's settings for waveforms at audio_rate: the model's own, or with an audio
        tower the same map (rows, columns, seconds) at the tower's 44.1 kHz (vlsa.audio.at_rate)."""
        return at_rate(self.config.audio, self.audio_rate)

    @cached_property
    def wave_frontend(self) -> torch.nn.Module:
        """The front end for waveforms at audio_rate (what the app draws a sound with); the
        model's `frontend` itself without an audio tower."""
        if not self.has_audio_tower:
            return self.frontend
        return build_frontend(self.wave_audio_config)

    # --- preparing inputs ---

    def _load(self, item: Item):
        path, start, end = (item if isinstance(item, tuple) else (item, 0.0, None))
        if end is None:
            end = start + self.config.clip_seconds
        return load_clip(path, start, end, self.config.video, self.config.audio,
                         tower_rate=self.audio_rate if self.has_audio_tower else None)

    def prepare_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Decoded frames (..., T, 3, H, W) -> normalised float32; uint8 frames are normalised with
        the preset's statistics, float frames are taken as normalised already."""
        require_finite(frames, "video tensor")
        return normalize_frames(frames, self.config.video) if frames.dtype == torch.uint8 else frames.float()

    def prepare_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """Mono waveforms (..., S) at audio_rate -> what the audio embedding reads: normalised
        spectrograms (..., F, M), or with an audio tower its input (..., S'), one clip long."""
        require_finite(waves, "audio tensor")
        if self.has_audio_tower:
            return tower_input(waves, self.audio_rate, self.config)
        return self.frontend(waves.float())

    def prepare_video(self, item: Item) -> torch.Tensor:
        """An item -> normalised frames (T, 3, H, W) float32 on CPU."""
        if isinstance(item, torch.Tensor):
            return self.prepare_frames(item)
        clip = self._load(item)
        if clip.frames is None:
            raise MediaError(f"{_name(item)}: no video stream")
        return self.prepare_frames(clip.frames)

    def prepare_audio(self, item: Item) -> torch.Tensor:
        """An item -> what the audio embedding reads (prepare_waves), float32 on CPU."""
        if isinstance(item, torch.Tensor):
            if item.dim() == 1:
                return self.prepare_waves(item)
            if self.has_audio_tower:
                raise ValueError(f"audio.tower={self.config.audio.tower} embeds waveforms (S,), not a map "
                                 f"of shape {tuple(item.shape)}")
            require_finite(item, "audio tensor")
            return item.float()  # a spectrogram already
        clip = self._load(item)
        if not clip.has_audio:
            raise MediaError(f"{_name(item)}: no audio stream")
        return self.prepare_waves(clip.tower_wave if self.has_audio_tower else clip.wave)

    def prepare_text(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokenizer(list(texts))

    # --- embeddings ---

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, E) L2-normalised text embeddings, float32 on CPU."""
        self.eval()
        out = []
        for chunk in _batches(list(texts), batch_size):
            ids, mask = (t.to(self.device) for t in self.prepare_text(chunk))
            out.append(self.embed_text_ids(ids, mask).float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.config.embed_dim)

    @torch.inference_mode()
    def embed_audio(self, items: Sequence[Item], batch_size: int = 64) -> torch.Tensor:
        """(N, E) audio embeddings; each item a path, (path, start, end), waveform or map."""
        return self.embed_audio_all(items, batch_size)["audio"]

    @torch.inference_mode()
    def embed_audio_all(self, items: Sequence[Item], batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Every vector of each sound, its tower run once (VLSAModel.embed_audio_vectors): "audio"
        (N, E), and with an audio tower TOWER_VECTORS (N, width); example_modality names the one
        that compares sounds with each other."""
        return self._embed(items, batch_size, self.prepare_audio, "audio")

    @torch.inference_mode()
    def embed_video(self, items: Sequence[Item], batch_size: int = 32) -> torch.Tensor:
        """(N, E) video embeddings; each item a path, (path, start, end) or frames."""
        return self._embed(items, batch_size, self.prepare_video, "video")["video"]

    def _embed(self, items, batch_size, prepare, modality) -> dict[str, torch.Tensor]:
        out = [self.embed_prepared_all(modality, torch.stack([prepare(item) for item in chunk]))
               for chunk in _batches(list(items), batch_size)]
        if not out:
            return {modality: torch.empty(0, self.config.embed_dim)}
        return {key: torch.cat([vectors[key] for vectors in out]) for key in out[0]}

    @torch.inference_mode()
    def embed_decoded(self, modality: str, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(N, E) embeddings of decoded media (embed_decoded_all's joint vectors)."""
        return self.embed_decoded_all(modality, x, batch_size)[modality]

    @torch.inference_mode()
    def embed_decoded_all(self, modality: str, x: torch.Tensor,
                          batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Every vector of decoded media, prepared as prepare_video / prepare_audio prepare one
        item: video uint8 frames (N, T, 3, H, W) -> {"video": (N, E)}; audio mono waveforms (N, S)
        -> {"audio": (N, E)}, with an audio tower also {TOWER_VECTORS: (N, width)} from the same
        run of it. Run padded with zeros to `batch_size` rows when given, so a row's vector does
        not depend on how many others share its batch (see catalog/indexer.py)."""
        n = len(x)
        if batch_size is not None:
            x = torch.cat([x, x.new_zeros((batch_size - n, *x.shape[1:]))])
        prepared = self.prepare_frames(x) if modality == "video" else self.prepare_waves(x)
        return {key: vectors[:n] for key, vectors in self.embed_prepared_all(modality, prepared).items()}

    def embed_prepared(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of an already prepared batch: video (B, T, 3, H, W) or audio (B, F, M)."""
        return self.embed_prepared_all(modality, x)[modality]

    def embed_prepared_all(self, modality: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """embed_prepared, with an audio tower its own vectors too (VLSAModel.embed_audio_vectors)."""
        with torch.inference_mode():
            self.eval()
            if modality == "audio":
                vectors = self.embed_audio_vectors(x.to(self.device))
            else:
                vectors = {"video": self.pool(self.encode_video(x.to(self.device)), "video")}
            return {key: v.float().cpu() for key, v in vectors.items()}

    # --- patch-level maps (heatmaps) ---

    def patch_contributions(self, tokens: torch.Tensor, modality: str, query: torch.Tensor) -> torch.Tensor:
        """Each token's share of the cosine between `query` (E,) and the global embedding of
        `tokens` (B, N, D) -> (B, N); the shares average to exactly that cosine, since the
        patch embeddings average to the pooled embedding before its norm. Shares rather than
        each patch's own cosine: a background patch can point the query's way while
        contributing little (docs/DESIGN.md, "Heatmaps")."""
        projected = self.patch_embeddings(tokens, modality)
        return (projected @ query.to(projected)) / projected.mean(dim=1).norm(dim=-1, keepdim=True)

    @torch.inference_mode()
    def video_patch_map(self, query: torch.Tensor, item: Item) -> torch.Tensor:
        """Each video patch's share of the clip's cosine with a query embedding (E,):
        (frames, h, w), averaging to that cosine (patch_contributions)."""
        self.eval()
        x = self.prepare_video(item)[None].to(self.device)
        heat = self.patch_contributions(self.encode_video(x), "video", query)[0]
        g = self.config.video.grid
        return heat.view(self.config.video.frames, g, g).float().cpu()

    @torch.inference_mode()
    def audio_patch_map(self, query: torch.Tensor, item: Item) -> torch.Tensor:
        """Each spectrogram patch's share of the sound's cosine with a query embedding (E,): (f, t).
        With audio.tower_residual the sound's embedding is its map's patches plus the tower's
        adapter output, the same for every patch (the tower hears the clip whole), so the shares
        still average to the cosine and differ where the model's own audio path hears the query;
        the patches are those of audio_map."""
        if self.has_audio_tower and not self.config.audio.tower_residual:
            raise ValueError(f"audio.tower={self.config.audio.tower}: the sound's embedding is not made "
                             "of spectrogram patches, so there is no patch map (see audio_block_map)")
        self.eval()
        x = self.prepare_audio(item)[None].to(self.device)
        if self.has_audio_tower:
            tokens = self.encode_audio(self.shared_audio_map(x)) + self.audio_adapter(self.audio_tower(x))[:, None]
        else:
            tokens = self.encode_audio(x)
        heat = self.patch_contributions(tokens, "audio", query)[0]
        return heat.view(*self.config.audio.grid).float().cpu()

    @torch.inference_mode()
    def audio_map(self, wave: torch.Tensor) -> tuple[torch.Tensor, AudioConfig]:
        """The spectrogram (F, M) of a waveform at audio_rate to draw a sound's heatmap over, and
        the settings it was made with (its rows' frequencies): the map audio_patch_map's patches
        are of, or with a tower that hears the clip whole (no patch map) the front end's own map
        at the tower's rate."""
        if self.has_audio_tower and self.config.audio.tower_residual:
            return self.shared_audio_map(tower_input(wave, self.audio_rate, self.config)[None])[0].cpu(), self.config.audio
        return self.wave_frontend(wave), self.wave_audio_config

    @torch.inference_mode()
    def audio_block_map(self, query: torch.Tensor, item: Item) -> BlockMap:
        """With a pretrained audio tower: the cosine of a query embedding (E,) with each of the
        sound's blocks (2.3 s every 1.16 s for aisfx) heard alone, through the adapter into the
        joint space. The sound's own embedding is made of the mean of its blocks, so this says
        when the sound is like the query, never at which frequencies: the tower hears each block
        whole. With audio.tower_residual each block is joined with the whole sound's shared-path
        audio, so the blocks differ by what the tower hears. A sound of one block embeds as that
        block."""
        if not self.has_audio_tower:
            raise ValueError("audio.tower=shared: the sound's embedding is made of spectrogram patches "
                             "(see audio_patch_map)")
        self.eval()
        x = self.prepare_audio(item)[None].to(self.device)
        blocks, sounding = self.audio_tower.embed_blocks(x)
        z = F.normalize(blocks[0], dim=-1)  # (n, width), each block as a whole sound
        shared = self.shared_audio(x)  # with audio.tower_residual: the whole sound's, under each block
        joint = self.join_tower_audio(z, shared=None if shared is None else shared.expand(len(z), -1))
        similarity = (joint @ F.normalize(query.to(joint), dim=-1)).float().cpu()
        return BlockMap(similarity, block_spans(self.audio_tower.spec, len(similarity)), sounding[0].cpu())


def _name(item: Item) -> str:
    return os.fspath(item[0] if isinstance(item, tuple) else item)
