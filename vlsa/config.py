"""Configuration: one dataclass per part, a top-level `VLSAConfig`, and the preset registry.

A checkpoint's `config.json` is `VLSAConfig.to_dict()`; `VLSAConfig.from_dict` rebuilds it, so a
model is rebuilt from the checkpoint folder alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from vlsa import __version__


@dataclass
class VideoConfig:
    frames: int = 8  # frames sampled per clip (random in training, uniform in eval)
    size: int = 224  # frames are resized (short side) and centre-cropped to size x size
    patch: int = 16  # square patch side in pixels; size must be a multiple
    mask_ratio: float = 0.75  # fraction of each frame's patches dropped for masked modelling
    # "linear": each patch's pixels through one linear layer (the paper, ViT); "conv": overlapping
    # stride-2 convolutions down to the patch grid, so a token sees a little beyond its patch.
    stem: str = "linear"
    # CLIP's pixel statistics: the encoder sees (x/255 - mean) / std per channel.
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @property
    def grid(self) -> int:
        """Patches per side of one frame."""
        return self.size // self.patch

    @property
    def num_patches(self) -> int:
        """Patches per clip: frames x grid x grid."""
        return self.frames * self.grid * self.grid


@dataclass
class AudioConfig:
    frontend: str = "logfreq"  # "logfreq" (the paper's log-frequency STFT) or "mel" (AST-style)
    sample_rate: int = 11025  # waveform rate the front end expects, Hz
    n_fft: int = 1022  # STFT window; 1022 gives 512 linear frequency bins
    hop: int = 256  # STFT hop in samples
    bins: int = 256  # frequency rows of the map: log-scale bins or mel bands
    frames: int = 256  # time columns of the map; clip length is frames * hop / sample_rate
    patch: int = 16  # square patch side on the spectrogram
    mask_ratio: float = 0.75  # fraction of spectrogram patches dropped for masked modelling
    fmin: float = 20.0  # lowest frequency of the log / mel axis, Hz
    # Log-magnitude statistics: the encoder sees (spec - norm_mean) / norm_std. Set per front
    # end from real sound (vlsa.audio.map_statistics; docs/DESIGN.md, "Audio normalisation") so
    # typical maps land near zero mean, unit spread.
    norm_mean: float = -1.4
    norm_std: float = 2.6
    # Where the global audio embedding comes from: "shared", the shared encoder's pass over this
    # map (the paper), or a pretrained sound encoder ("aisfx", vlsa/audio_tower.py) kept frozen,
    # reading the 44.1 kHz waveform, its embedding mapped into the joint space by a trained adapter.
    tower: str = "shared"
    # With a tower: its adapter's output is added to the shared encoder's own pooled audio (of the
    # same sound at the map's rate) before the pool norm and projection, so a checkpoint given a
    # tower this way starts as it was and keeps what its own audio path heard (the demo's tones,
    # which the tower hears less apart; docs/REAL_MEDIA.md, "Stage 8").
    tower_residual: bool = False
    # A pretrained sound encoder whose similarities between sounds the shared audio path is
    # trained to reproduce (loss.distill_weight); None = no distillation.
    teacher: str | None = None

    @property
    def clip_seconds(self) -> float:
        return self.frames * self.hop / self.sample_rate

    @property
    def num_samples(self) -> int:
        """Waveform samples that fill exactly `frames` STFT columns (centred STFT)."""
        return self.frames * self.hop - 1

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency patches, time patches)."""
        return self.bins // self.patch, self.frames // self.patch

    @property
    def num_patches(self) -> int:
        f, t = self.grid
        return f * t


@dataclass
class TextConfig:
    # "clip" is open_clip's BPE, which ships inside its wheel (works offline); anything else is a
    # local Hugging Face tokenizer name or path, loaded with local_files_only.
    tokenizer: str = "clip"
    max_len: int = 40  # tokens per caption, including start and end tokens
    vocab_size: int = 49409  # tokenizer vocabulary + 1 id reserved for [MASK] where it has none
    embed_dim: int | None = None  # factorised token embedding width (ALBERT); None = encoder width
    mask_ratio: float = 0.15  # BERT: 15% of tokens chosen; of those 80% [MASK], 10% random, 10% kept
    # Where the global text embedding comes from: "shared", the shared encoder's text pass (the
    # paper), or a pretrained sentence encoder ("all-minilm-l6-v2", vlsa/text_tower.py) kept frozen,
    # its sentence embedding mapped into the joint space by a small trained adapter.
    tower: str = "shared"
    # A pretrained sentence encoder whose similarities between captions the shared text path is
    # trained to reproduce (loss.distill_weight); None = no distillation. Needs its tokenizer.
    teacher: str | None = None


@dataclass
class EncoderConfig:
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    # A LayerNorm on the tokens before the first block, as CLIP's ln_pre: `vlsa train --init-clip`
    # sets it, so CLIP's blocks see the inputs they were trained on (vlsa/clip_init.py).
    pre_norm: bool = False


# Settings added after checkpoints were shipped, written only when they differ from these
# defaults: a model that does not use one keeps its config file and its fingerprint, so the
# catalogs it made stay valid (a changed fingerprint re-indexes a whole library).
LATER_SETTINGS = {("encoder", "pre_norm"): False, ("audio", "tower"): "shared", ("audio", "teacher"): None,
                  ("audio", "tower_residual"): False}


@dataclass
class DecoderConfig:
    width: int = 512  # MAE / TVLT decoder: 512 wide, 8 layers
    depth: int = 8
    # MAE has 16 heads of 32; 8 heads of 64 have the same parameters and FLOPs, and the fused
    # attention kernels run head width 64 faster (docs/PERFORMANCE.md, "Second lease").
    heads: int = 8
    mlp_ratio: float = 4.0
    # Hide caption padding and missing modalities from the decoder's keys, as the joint pass does.
    # Off by default: those positions tell the decoder nothing (their input is a constant, zeros
    # or the padding token, and in the joint pass they attended only to valid keys), the losses
    # skip them, and inference never runs the decoder; a key mask forces a slower attention
    # kernel (docs/PERFORMANCE.md, "Attention kernels").
    key_mask: bool = False


@dataclass
class LossConfig:
    masked_modelling: bool = True  # the local objective; off = "no masked modelling" ablation
    # Which pairs the global objective aligns: "audio" (audio<->video and audio<->text, the
    # paper), "video_text" (the ablation that matches video<->text instead), or "none".
    matching: str = "audio"
    matching_head: bool = True  # the binary "do these belong together" head with drawn negatives
    global_weight: float = 5.0  # L = L_local + global_weight * L_global (the paper's 5)
    # L_local = sum of the three terms, each times its weight (the paper: all 1). On frames that are
    # mostly flat background the video term averages over patches that are trivial to predict.
    video_mse_weight: float = 1.0
    audio_mse_weight: float = 1.0
    text_mlm_weight: float = 1.0
    temperature_init: float = 0.07  # CLIP / VATT
    temperature_min: float = 0.01  # clamp: logit scale at most 100, as CLIP
    norm_video_targets: bool = True  # MAE's norm_pix_loss: pixel targets normalised per patch
    # Spectrogram targets stay as they are: normalising near-silent patches per patch would turn
    # codec noise into unit-variance targets that nothing can predict.
    norm_audio_targets: bool = False
    # Global embeddings for the contrastive loss come from a unimodal pass over the "full" clip,
    # only its "visible" (unmasked) tokens, or a fresh random "sampled" share `global_keep` of
    # each frame's and of the spectrogram's patches: cheaper passes, as FLIP. Inference uses all.
    global_tokens: str = "full"
    global_keep: float = 0.5
    # Weight of the distillation terms (text.teacher, audio.teacher), inside L_global.
    distill_weight: float = 1.0
    # Temperature of the teacher's and the student's similarity distributions in that term.
    distill_temperature: float = 0.05


@dataclass
class VLSAConfig:
    preset: str = "base"
    embed_dim: int = 512  # width of the joint retrieval space (global embeddings)
    # Standardise pooled features per modality (batch statistics in training, running ones at
    # inference, as the BatchNorm of SimCLR / MoCo v3 heads) before the projection. Against the
    # collapse of mean-pooled video features on mostly-static backgrounds (docs/TRAINING.md).
    pool_norm: bool = False
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    version: str = __version__  # the project version that wrote this config

    @property
    def clip_seconds(self) -> float:
        """Seconds of media one clip covers (set by the audio map's time span)."""
        return self.audio.clip_seconds

    def validate(self) -> VLSAConfig:
        """Raise ValueError with a one-line reason if the shapes cannot work together."""
        # The pretrained towers' names, imported here: their modules need torch, and a config is
        # also read where torch is not (a text search through the ONNX export, vlsa/text_query.py).
        from vlsa.audio_tower import PRETRAINED as SOUND_MODELS
        from vlsa.text_tower import PRETRAINED

        v, a, e, d = self.video, self.audio, self.encoder, self.decoder
        for name, value, default in _settings(self):  # `--set x=False` is text, and text is true
            if not _same_kind(value, default):
                raise ValueError(f"{name} must be {KINDS[type(default)]}, not {value!r}")
        checks = [
            (v.size % v.patch == 0, f"video.size {v.size} is not a multiple of video.patch {v.patch}"),
            (a.bins % a.patch == 0, f"audio.bins {a.bins} is not a multiple of audio.patch {a.patch}"),
            (a.frames % a.patch == 0, f"audio.frames {a.frames} is not a multiple of audio.patch {a.patch}"),
            (e.width % e.heads == 0, f"encoder.width {e.width} is not divisible by encoder.heads {e.heads}"),
            (d.width % d.heads == 0, f"decoder.width {d.width} is not divisible by decoder.heads {d.heads}"),
            (a.frontend in ("logfreq", "mel"), f"audio.frontend must be logfreq or mel, not {a.frontend!r}"),
            (self.loss.matching in ("audio", "video_text", "none"), f"loss.matching {self.loss.matching!r}"),
            (v.stem == "linear" or (v.stem == "conv" and v.patch >= 2 and v.patch & (v.patch - 1) == 0),
             f"video.stem must be linear, or conv with a power-of-two patch, not {v.stem!r} (patch {v.patch})"),
            (self.loss.global_tokens in ("full", "visible", "sampled"),
             f"loss.global_tokens must be full, visible or sampled, not {self.loss.global_tokens!r}"),
            (0 < self.loss.global_keep <= 1, f"loss.global_keep {self.loss.global_keep} is not in (0, 1]"),
            (0 <= v.mask_ratio < 1 and 0 <= a.mask_ratio < 1, "mask ratios must lie in [0, 1)"),
            (self.text.tower in ("shared", *PRETRAINED),
             f"text.tower must be shared or one of {', '.join(PRETRAINED)}, not {self.text.tower!r}"),
            (self.text.teacher in (None, *PRETRAINED),
             f"text.teacher must be one of {', '.join(PRETRAINED)}, not {self.text.teacher!r}"),
            (self.text.tower == "shared" or self.text.tokenizer == self.text.tower,
             f"text.tower {self.text.tower!r} reads its own token ids: set text.tokenizer={self.text.tower}"),
            (self.text.teacher is None or self.text.tokenizer == self.text.teacher,
             f"text.teacher {self.text.teacher!r} reads the model's token ids: set text.tokenizer={self.text.teacher}"),
            (self.text.teacher is None or self.text.tower == "shared",
             "text.teacher distils into the shared text path: it needs text.tower=shared"),
            (a.tower in ("shared", *SOUND_MODELS),
             f"audio.tower must be shared or one of {', '.join(SOUND_MODELS)}, not {a.tower!r}"),
            (a.teacher in (None, *SOUND_MODELS),
             f"audio.teacher must be one of {', '.join(SOUND_MODELS)}, not {a.teacher!r}"),
            (not a.tower_residual or a.tower != "shared",
             "audio.tower_residual adds a pretrained tower to the shared audio path: it needs audio.tower"),
            (a.teacher is None or a.tower == "shared",
             "audio.teacher distils into the shared audio path: it needs audio.tower=shared"),
            (a.teacher is None or self.loss.matching == "audio",
             "audio.teacher teaches the audio embedding that loss.matching=audio trains: set it"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ValueError(reason)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for (part, key), default in LATER_SETTINGS.items():
            if d[part][key] == default:
                del d[part][key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VLSAConfig:
        """Rebuild from `to_dict()` output; unknown keys are an error, not silently dropped."""
        d = dict(d)
        parts = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, sub in _PARTS.items():
            if name in d:
                kwargs[name] = _build(sub, d.pop(name), name)
        for key in list(d):
            if key not in parts:
                raise ValueError(f"unknown config key {key!r}")
            kwargs[key] = d.pop(key)
        return cls(**kwargs).validate()


_PARTS = {
    "video": VideoConfig,
    "audio": AudioConfig,
    "text": TextConfig,
    "encoder": EncoderConfig,
    "decoder": DecoderConfig,
    "loss": LossConfig,
}


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown config key {prefix}.{sorted(unknown)[0]}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


# What a setting must be, by the type of its default (a setting whose default is None is checked
# by validate's own rules).
KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _settings(cfg, prefix: str = ""):
    """(dotted name, value, default) of every setting with a true-or-false, number or text
    default, in every part."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _settings(value, f"{prefix}{f.name}.")
        elif type(f.default) in KINDS:
            yield f"{prefix}{f.name}", value, f.default


def _same_kind(value: Any, default: Any) -> bool:
    """A bool is not a number here, and a whole number is a number."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def parse_override(pair: str) -> tuple[str, Any]:
    """`"encoder.depth=2"` -> `("encoder.depth", 2)`: the value read as JSON, else kept as text
    (`loss.matching=none`). The syntax of `vlsa train --set` and the benchmarks' `--set`."""
    key, sep, value = pair.partition("=")
    if not sep:
        raise ValueError(f"{pair!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def apply_overrides(cfg: VLSAConfig, overrides: dict[str, Any]) -> VLSAConfig:
    """Set dotted keys (`{"encoder.depth": 2, "embed_dim": 64}`) on a copy of `cfg`."""
    d = dataclasses.asdict(cfg)  # every setting, LATER_SETTINGS at their defaults included
    for key, value in overrides.items():
        node, *path = key.split(".")
        if not path:
            if node not in d or isinstance(d[node], dict):
                raise ValueError(f"unknown config key {key!r}")
            d[node] = value
            continue
        if node not in _PARTS or path[0] not in d[node] or len(path) > 1:
            raise ValueError(f"unknown config key {key!r}")
        d[node][path[0]] = value
    return VLSAConfig.from_dict(d)


# --- presets ----------------------------------------------------------------------------------


def _tiny() -> VLSAConfig:
    """Trains on a 2-core CPU: about 3M parameters, 4 frames of 64x64, a 2-second 64x64 mel map."""
    return VLSAConfig(
        preset="tiny",
        embed_dim=128,
        pool_norm=True,  # without it video embeddings collapse on the synthetic set (docs/TRAINING.md)
        video=VideoConfig(frames=4, size=64, patch=8),
        audio=AudioConfig(frontend="mel", sample_rate=16000, n_fft=1024, hop=500, bins=64,
                          frames=64, patch=8, norm_mean=-1.3, norm_std=5.0),
        text=TextConfig(max_len=24, embed_dim=32),
        encoder=EncoderConfig(width=128, depth=4, heads=4),
        decoder=DecoderConfig(width=96, depth=2, heads=4),
    )


def _small() -> VLSAConfig:
    """One consumer GPU: ViT-S width, 8 frames of 112x112, a 5-second 128-band mel map."""
    return VLSAConfig(
        preset="small",
        embed_dim=256,
        video=VideoConfig(frames=8, size=112, patch=16),
        audio=AudioConfig(frontend="mel", sample_rate=16000, n_fft=1024, hop=320, bins=128,
                          frames=256, patch=16, norm_mean=-2.6, norm_std=5.0),
        text=TextConfig(max_len=32, embed_dim=128),
        encoder=EncoderConfig(width=384, depth=12, heads=6),
        decoder=DecoderConfig(width=256, depth=4, heads=8),
    )


def _base() -> VLSAConfig:
    """The paper: shared ViT-B, 8 x 224 x 224 video, 256 x 256 log-frequency audio, 40 tokens."""
    return VLSAConfig(preset="base")


PRESETS = {"tiny": _tiny, "small": _small, "base": _base}


def list_presets() -> list[str]:
    return list(PRESETS)


def preset_config(name: str, **overrides: Any) -> VLSAConfig:
    """The named preset with dotted-key overrides applied (`encoder.depth=2` as `encoder__depth`
    is not needed: pass `**{"encoder.depth": 2}`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return apply_overrides(PRESETS[name]().validate(), overrides)
