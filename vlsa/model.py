"""The VLSA network: one transformer encoder shared by video, audio and text.

Its layers (attention, block, transformer, patch embeddings, positions, the matching head) are in
vlsa/layers.py; `VLSAModel`'s `forward` chains named steps (embed, mask, joint encode, decode, unimodal encode, pool, losses).

Conventions, pinned once:
- video (B, T, 3, H, W), normalised; video tokens are frame-major: t * g * g + row * g + col.
- audio (B, F, M): F frequency rows, M time columns, normalised; tokens f * (M / p) + m.
- text ids (B, L) with attention mask (B, L), True on real tokens.
- masks are bool, True = removed (MAE's "1 is remove").
- Global embeddings come from passes where each modality attends only to itself (docs/DESIGN.md,
  "Decisions where the paper is silent"); only the masked-modelling pass attends across modalities.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from vlsa.audio import build_frontend
from vlsa.audio_tower import PRETRAINED as SOUND_MODELS
from vlsa.audio_tower import TOWER_WAVE, SoundEncoder
from vlsa.config import VLSAConfig
from vlsa.layers import (
    ConvStem,
    MatchingHead,
    SeparablePositions,
    Transformer,
    init_weights,
    patchify_audio,
    patchify_video,
    tower_adapter,
)
from vlsa.losses import (
    IGNORE,
    contrastive_loss,
    masked_token_loss,
    matching_loss,
    reconstruction_loss,
    similarity_distillation,
)
from vlsa.text_tower import SentenceEncoder
from vlsa.vectors import SHARED_AUDIO, TOWER_VECTORS


def _positions(cfg: VLSAConfig, width: int) -> nn.ModuleDict:
    fa, ma = cfg.audio.grid
    return nn.ModuleDict({
        "video": SeparablePositions(cfg.video.frames, cfg.video.grid ** 2, width),
        "audio": SeparablePositions(fa, ma, width),
        "text": SeparablePositions(1, cfg.text.max_len, width),
    })


def _gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x (B, N, C), ids (B, K) -> (B, K, C)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def num_kept(n: int, mask_ratio: float) -> int:
    """Patches a mask of `mask_ratio` keeps out of n (at least one)."""
    return max(1, round(n * (1 - mask_ratio)))


def max_chosen_tokens(length: int, mask_ratio: float) -> int:
    """Most tokens of a caption chosen for masked-token prediction (BERT's max_predictions_per_seq):
    twice the expected number, so the cap rarely binds while the logits keep a fixed shape."""
    return min(length, max(1, math.ceil(2 * mask_ratio * length)))


def _select_tokens(x: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    """All tokens (ids None) or those at ids."""
    return x if ids is None else _gather_tokens(x, ids)


# --- the model --------------------------------------------------------------------------------


class VLSAModel(nn.Module):
    def __init__(self, config: VLSAConfig):
        super().__init__()
        self.config = cfg = config.validate()
        D, Dd, E = cfg.encoder.width, cfg.decoder.width, cfg.embed_dim
        pv, pa = cfg.video.patch, cfg.audio.patch
        text_dim = cfg.text.embed_dim or D
        # per-modality input embeddings
        self.video_embed = nn.Linear(pv * pv * 3, D) if cfg.video.stem == "linear" else ConvStem(pv, D)
        self.audio_embed = nn.Linear(pa * pa, D)
        self.token_embed = nn.Embedding(cfg.text.vocab_size, text_dim)
        self.text_embed = nn.Linear(text_dim, D) if text_dim != D else nn.Identity()
        self.positions = _positions(cfg, D)
        self.modality = nn.ParameterDict({m: nn.Parameter(torch.zeros(D)) for m in MODALITIES})
        self.encoder = Transformer(D, cfg.encoder.depth, cfg.encoder.heads, cfg.encoder.mlp_ratio,
                                   cfg.encoder.pre_norm)
        # decoder shared by the modalities (masked modelling)
        self.decoder_embed = nn.Linear(D, Dd)
        self.mask_token = nn.Parameter(torch.zeros(Dd))
        self.decoder_positions = _positions(cfg, Dd)
        self.decoder_modality = nn.ParameterDict({m: nn.Parameter(torch.zeros(Dd)) for m in MODALITIES})
        self.decoder = Transformer(Dd, cfg.decoder.depth, cfg.decoder.heads, cfg.decoder.mlp_ratio)
        self.video_head = nn.Linear(Dd, pv * pv * 3)
        self.audio_head = nn.Linear(Dd, pa * pa)
        self.text_head = nn.Linear(Dd, text_dim)  # logits through the tied token embedding
        self.text_bias = nn.Parameter(torch.zeros(cfg.text.vocab_size))
        # global embeddings and the audio-matching objective
        self.proj = nn.ModuleDict({m: nn.Linear(D, E, bias=False) for m in MODALITIES})
        if cfg.pool_norm:
            self.pool_norm = nn.ModuleDict({m: nn.BatchNorm1d(D, affine=False) for m in MODALITIES})
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.loss.temperature_init)))
        self.match_head = MatchingHead(E)
        self.apply(init_weights)
        for p in [*self.modality.values(), *self.decoder_modality.values(), self.mask_token]:
            nn.init.trunc_normal_(p, std=0.02)
        for pos in [*self.positions.values(), *self.decoder_positions.values()]:
            nn.init.trunc_normal_(pos.row, std=0.02)
            nn.init.trunc_normal_(pos.col, std=0.02)
        # pretrained text models come last: the initialisation above must not touch their weights
        if cfg.text.tower != "shared":
            self.text_tower = SentenceEncoder(cfg.text.tower)
            self.text_adapter = tower_adapter(self.text_tower.width, D)
        if cfg.text.teacher is not None:
            self.text_teacher = SentenceEncoder(cfg.text.teacher)
        if cfg.audio.tower != "shared":
            self.audio_tower = SoundEncoder(cfg.audio.tower)
            self.audio_adapter = tower_adapter(self.audio_tower.width, D, cfg.audio.tower_residual)
        if cfg.audio.teacher is not None:
            self.audio_teacher = SoundEncoder(cfg.audio.teacher)

    # --- tokens ---

    def tokens_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, Nv, D) with position and modality embeddings."""
        if self.config.video.stem == "conv":
            x = self.video_embed(video)
        else:
            x = self.video_embed(patchify_video(video, self.config.video.patch))
        return x + self.positions["video"]() + self.modality["video"]

    def tokens_audio(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, F, M) -> (B, Na, D)."""
        x = self.audio_embed(patchify_audio(spec, self.config.audio.patch))
        return x + self.positions["audio"]() + self.modality["audio"]

    def tokens_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, D); L may be shorter than text.max_len."""
        x = self.text_embed(self.token_embed(ids))
        return x + self.positions["text"]()[: ids.shape[1]] + self.modality["text"]

    # --- masking ---

    def mask_video(self, B: int, device: torch.device, ratio: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame masked on its own (`ratio`: video.mask_ratio by default).
        Returns ids_keep (B, T * k) and removed (B, Nv)."""
        T, n = self.config.video.frames, self.config.video.grid ** 2
        keep = num_kept(n, self.config.video.mask_ratio if ratio is None else ratio)
        ids = torch.rand(B, T, n, device=device).argsort(dim=-1)[..., :keep]
        ids = (ids + torch.arange(T, device=device)[:, None] * n).flatten(1)
        return ids, _removed_from_keep(ids, T * n)

    def mask_audio(self, B: int, device: torch.device, ratio: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.config.audio.num_patches
        keep = num_kept(n, self.config.audio.mask_ratio if ratio is None else ratio)
        ids = torch.rand(B, n, device=device).argsort(dim=-1)[:, :keep]
        return ids, _removed_from_keep(ids, n)

    def mask_text(self, ids: torch.Tensor, maskable: torch.Tensor,
                  mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT: choose mask_ratio of the maskable tokens, at most max_chosen_tokens a row, so all
        are scored; 80% -> [MASK], 10% another of the caption's maskable tokens (not any id: the
        vocabulary holds start, end, padding and [MASK] ids), 10% kept.
        Returns (corrupted ids, labels with IGNORE where not chosen)."""
        ratio, k = self.config.text.mask_ratio, max_chosen_tokens(ids.shape[1], self.config.text.mask_ratio)
        p = torch.rand(ids.shape, device=ids.device)
        chosen = (p < ratio) & maskable
        if k < ids.shape[1]:  # keep a row's k smallest draws; 2.0 is above any draw
            chosen &= p <= p.masked_fill(~chosen, 2.0).topk(k, dim=1, largest=False).values[:, -1:]
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
        action = torch.rand(ids.shape, device=ids.device)
        out = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
        # the random token, with no host sync: a random rank among the row's maskable positions
        order = torch.argsort((~maskable).to(torch.int8), dim=1, stable=True)  # maskable first
        n = maskable.sum(dim=1, keepdim=True).clamp(min=1)
        pick = order.gather(1, torch.minimum((torch.rand(ids.shape, device=ids.device) * n).long(), n - 1))
        return torch.where(chosen & (action >= 0.8) & (action < 0.9), ids.gather(1, pick), out), labels

    # --- encoders ---

    def encode_video(self, video: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Unimodal: (B, T, 3, H, W) -> encoder outputs (B, N, D) of all (or the kept) patches."""
        return self.encoder(_select_tokens(self.tokens_video(video), ids_keep))

    def encode_audio(self, spec: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(_select_tokens(self.tokens_audio(spec), ids_keep))

    def encode_text(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.tokens_text(ids), attention_mask)

    def embed_text_ids(self, ids: torch.Tensor, attention_mask: torch.Tensor, gather=None) -> torch.Tensor:
        """Global text embeddings (B, E): the shared encoder's text pass pooled, or, with a
        pretrained text tower, its sentence embedding through the adapter. Unimodal either way."""
        if self.config.text.tower == "shared":
            return self.pool(self.encode_text(ids, attention_mask), "text", attention_mask, gather)
        return self.join_tower_text(self.text_tower(ids, attention_mask), gather)

    def join_tower_text(self, z: torch.Tensor, gather=None) -> torch.Tensor:
        """A pretrained text tower's sentence embeddings (B, width) -> joint embeddings (B, E):
        the adapter, then pooling's statistics and projection (a one-token mean)."""
        return self.pool(self.text_adapter(z)[:, None], "text", gather=gather)

    def audio_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the global audio embedding reads from a batch: the spectrograms, or with a
        pretrained audio tower its waveforms (vlsa.audio_tower.tower_input)."""
        return batch["audio"] if self.config.audio.tower == "shared" else batch[TOWER_WAVE]

    def embed_audio_input(self, x: torch.Tensor, gather=None) -> torch.Tensor:
        """Global audio embeddings (B, E) of what audio_input gives: the shared encoder's pass over
        spectrograms (B, F, M) pooled, or, with a pretrained audio tower, its embedding of
        waveforms (B, S) through the adapter. Unimodal either way."""
        if self.config.audio.tower == "shared":
            return self.pool(self.encode_audio(x), "audio", gather=gather)
        return self.join_tower_audio(self.audio_tower(x), gather, self.shared_audio(x))

    def embed_audio_vectors(self, x: torch.Tensor, parts: bool = False) -> dict[str, torch.Tensor]:
        """Every global vector of what audio_input gives, the tower run once: "audio", the joint
        embeddings (B, E) (embed_audio_input), and with a pretrained audio tower TOWER_VECTORS,
        the tower's own unit embeddings (B, width). Those group same-kind sounds better than
        their image through the adapter, so a sound is compared with another sound by them; a
        model without a tower has only the joint vectors, which serve for that too. `parts`:
        with audio.tower_residual also SHARED_AUDIO, the shared path's pooled audio (B, D)."""
        if self.config.audio.tower == "shared":
            return {"audio": self.embed_audio_input(x)}
        z, shared = self.audio_tower(x), self.shared_audio(x)
        out = {"audio": self.join_tower_audio(z, shared=shared), TOWER_VECTORS: z}
        if parts and shared is not None:  # what a fit of the adapter reads (train/tower_fit.py)
            out[SHARED_AUDIO] = shared
        return out

    def join_tower_audio(self, z: torch.Tensor, gather=None, shared: torch.Tensor | None = None) -> torch.Tensor:
        """A pretrained audio tower's unit embeddings (B, width) -> joint embeddings (B, E):
        the adapter, then pooling's statistics and projection (a one-token mean). With
        audio.tower_residual the adapter's output is added to `shared` (B, D), the shared
        encoder's pooled audio of the same sounds (shared_audio)."""
        x = self.audio_adapter(z)
        if self.config.audio.tower_residual:
            if shared is None:
                raise ValueError("audio.tower_residual: the shared path's pooled audio is needed (shared_audio)")
            x = x + shared
        return self.pool(x[:, None], "audio", gather=gather)

    def shared_audio(self, wave: torch.Tensor) -> torch.Tensor | None:
        """With audio.tower_residual: the shared encoder's mean audio token (B, D) of the tower's
        waveforms (B, S), as the shared path heard sound in training (shared_audio_map); None
        without."""
        if not self.config.audio.tower_residual:
            return None
        return self.encode_audio(self.shared_audio_map(wave)).mean(dim=1)

    def shared_audio_map(self, wave: torch.Tensor) -> torch.Tensor:
        """The map the shared audio path reads (B, F, M) of the tower's waveforms (B, S): resampled
        to the map's rate, through the model's own front end."""
        rate = SOUND_MODELS[self.config.audio.tower].sample_rate
        # in float32 even under autocast, where resample's conv1d would run in bf16 and lose the
        # quiet end of the map (as the front end keeps its STFT in float32)
        with torch.autocast(device_type=wave.device.type, enabled=False):
            wave = torchaudio.functional.resample(wave.float(), rate, self.config.audio.sample_rate)
        return self.map_frontend.to(wave.device)(wave)

    @cached_property
    def map_frontend(self) -> nn.Module:
        """The spectrogram the shared audio path reads (no learned weights: outside the state dict)."""
        return build_frontend(self.config.audio)

    def pool(self, tokens: torch.Tensor, modality: str, valid: torch.Tensor | None = None,
             gather=None) -> torch.Tensor:
        """Global embedding: mean of a modality's token outputs, projected, L2-normalised.
        gather (DDP, training): pool_norm standardises with the joined batch's statistics."""
        if valid is None:
            pooled = tokens.mean(dim=1)
        else:
            w = valid[..., None].to(tokens.dtype)
            pooled = (tokens * w).sum(1) / w.sum(1).clamp(min=1.0)
        if self.config.pool_norm:  # as SyncBatchNorm, which runs only on GPUs
            rows, offset = gather(pooled) if gather is not None and self.training else (pooled, 0)
            pooled = self.pool_norm[modality](rows)[offset:offset + pooled.shape[0]]
        return F.normalize(self.proj[modality](pooled), dim=-1)

    @torch.no_grad()
    def estimate_pool_statistics(self, batches) -> None:
        """pool_norm's running statistics recomputed as plain averages over `batches` with the
        weights as they are now ("precise BN"). The running averages kept during training lag
        the weights, and pooled caption features vary so little from caption to caption that
        the lag alone shifts every caption the same way (docs/TRAINING.md, "precise BN")."""
        if not self.config.pool_norm:
            return
        was_training = self.training
        self.eval()
        norms = self.pool_norm.values()
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches
            bn.train()
        for batch in batches:
            rows = batch["has_video"]
            if rows.sum() > 1:
                self.pool(self.encode_video(batch["video"][rows]), "video")
            rows = batch["has_audio"]
            if rows.sum() > 1:
                self.embed_audio_input(self.audio_input(batch)[rows])
            rows = batch["has_text"]
            if rows.sum() > 1:
                self.embed_text_ids(batch["text"][rows], batch["text_mask"][rows])
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
        self.train(was_training)

    def patch_embeddings(self, tokens: torch.Tensor, modality: str) -> torch.Tensor:
        """Each token (B, N, D) taken into the joint space the way pooling takes their mean:
        (B, N, E), not normalised. Pooling (mean, then the running statistics, then the
        projection) is linear, so the mean of these is the global embedding before its L2 norm.
        The running statistics stand in for the batch's in training too: a token is not a batch."""
        if self.config.pool_norm:  # an affine map, so means still match
            bn = self.pool_norm[modality]
            tokens = (tokens - bn.running_mean) / (bn.running_var + bn.eps).sqrt()
        return self.proj[modality](tokens)

    def compile_blocks(self, mode: str | None = None) -> None:
        """Regional torch.compile: each transformer block on its own. All blocks of a width share
        one compiled graph per sequence length (parameters are graph inputs), so compiling takes
        seconds rather than minutes, and the fused kernels (norms, GELU, residuals, bias) are
        where eager mode loses most of its time."""
        import torch._dynamo

        # one graph per (width, sequence length): the joint, video, audio, text and decoder passes
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        for block in [*self.encoder.blocks, *self.decoder.blocks]:
            block.compile(dynamic=False, mode=mode)

    def logit_scale_clamped(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(1 / self.config.loss.temperature_min)).exp()

    # --- training forward ---

    def forward(self, batch: dict[str, torch.Tensor], gather=None, return_embeddings: bool = False):
        """One training forward. Returns every loss term, plus "local", "global" and "loss"
        (and, with return_embeddings, the global embeddings it used, as a second dict).

        batch: video (B, T, 3, H, W), audio (B, F, M), text (B, L), text_mask (B, L) bool,
        text_maskable (B, L) bool (not a special token), has_video / has_audio / has_text (B,) bool.
        gather: under DDP, the cross-rank gather (losses.Gather) that makes every term the joined
        batch's (negatives, pool_norm statistics, the counts means divide by).
        """
        B, dev = batch["text"].shape[0], batch["text"].device
        masks = {"video": self.mask_video(B, dev), "audio": self.mask_audio(B, dev)}
        tokens = self.embed(batch)  # once: the joint and the unimodal passes take what they need
        terms: dict[str, torch.Tensor] = {}
        z: dict[str, torch.Tensor] = {}
        if self.config.loss.masked_modelling:
            terms.update(self.forward_local(batch, masks, tokens, gather))
        if self.config.loss.matching != "none":
            z = self.global_embeddings(batch, masks, tokens, gather)
            terms.update(self.global_losses(z, batch, gather))
        zero = batch["audio"].new_zeros(())
        weights = self.config.loss
        local = sum((getattr(weights, f"{k}_weight") * terms[k] for k in LOCAL_TERMS if k in terms), zero)
        global_ = sum((v for k, v in terms.items() if k not in LOCAL_TERMS), zero)
        losses = {**terms, "local": local, "global": global_,
                  "loss": local + self.config.loss.global_weight * global_}
        return (losses, z) if return_embeddings else losses

    def embed(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every video and audio patch embedded (with positions), once for both kinds of pass: a
        second conv-stem run would add 5% to tiny's step FLOPs."""
        return {"video": self.tokens_video(batch["video"]), "audio": self.tokens_audio(batch["audio"])}

    def forward_local(self, batch: dict[str, torch.Tensor], masks: dict,
                      tokens: dict[str, torch.Tensor], gather=None) -> dict[str, torch.Tensor]:
        """Masked modelling: one joint pass over the visible tokens of all three modalities
        (attention crosses modalities here), then the shared decoder and per-modality losses."""
        (keep_v, removed_v), (keep_a, removed_a) = masks["video"], masks["audio"]
        has_v, has_a, has_t = batch["has_video"], batch["has_audio"], batch["has_text"]
        ids, text_mask = batch["text"], batch["text_mask"]
        corrupted, labels = self.mask_text(ids, batch["text_maskable"] & has_t[:, None],
                                           self.config.text.vocab_size - 1)
        xv, xa = _gather_tokens(tokens["video"], keep_v), _gather_tokens(tokens["audio"], keep_a)
        xt = self.tokens_text(corrupted)
        sizes = [xv.shape[1], xa.shape[1], xt.shape[1]]
        key_valid = _key_valid([has_v, has_a], sizes[:2], text_mask)
        hv, ha, ht = self.encoder(torch.cat([xv, xa, xt], dim=1), key_valid).split(sizes, dim=1)
        pred_v, pred_a, yt = self.decode(hv, keep_v, ha, keep_a, ht, has_v, has_a, text_mask)
        scored, labels = self.scored_tokens(labels)
        logits_t = self.text_logits(_gather_tokens(yt, scored))
        cfg = self.config
        return {
            "video_mse": reconstruction_loss(pred_v, patchify_video(batch["video"], cfg.video.patch),
                                             removed_v, has_v, cfg.loss.norm_video_targets, gather),
            "audio_mse": reconstruction_loss(pred_a, patchify_audio(batch["audio"], cfg.audio.patch),
                                             removed_a, has_a, cfg.loss.norm_audio_targets, gather),
            "text_mlm": masked_token_loss(logits_t, labels, gather),
        }

    def decode(self, hv, keep_v, ha, keep_a, ht, has_v, has_a, text_mask):
        """Shared decoder over full-length sequences: encoder outputs at kept positions, the
        mask token elsewhere. Returns video patches (B, Nv, p*p*3), audio patches (B, Na, p*p)
        and the decoder's text states (B, L, Dd)."""
        cfg, pos, mod = self.config, self.decoder_positions, self.decoder_modality
        nv, na, L = cfg.video.num_patches, cfg.audio.num_patches, ht.shape[1]
        dv = self._unmask(self.decoder_embed(hv), keep_v, nv) + pos["video"]() + mod["video"]
        da = self._unmask(self.decoder_embed(ha), keep_a, na) + pos["audio"]() + mod["audio"]
        dt = self.decoder_embed(ht) + pos["text"]()[:L] + mod["text"]
        key_valid = _key_valid([has_v, has_a], [nv, na], text_mask) if cfg.decoder.key_mask else None
        yv, ya, yt = self.decoder(torch.cat([dv, da, dt], dim=1), key_valid).split([nv, na, L], dim=1)
        return self.video_head(yv), self.audio_head(ya), yt

    def scored_tokens(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (B, K) worth a vocabulary-wide softmax, and their labels: every chosen token
        (mask_text chooses at most K = max_chosen_tokens), so shapes stay static (no host sync)
        while the logits shrink from L to K per row."""
        L = labels.shape[1]
        k = max_chosen_tokens(L, self.config.text.mask_ratio)
        positions = (labels != IGNORE).float().topk(k, dim=1, sorted=False).indices
        return positions, labels.gather(1, positions)

    def text_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Decoder text states (B, K, Dd) -> logits (B, K, vocab) through the tied token table."""
        return self.text_head(states) @ self.token_embed.weight.T + self.text_bias

    def _unmask(self, x: torch.Tensor, ids_keep: torch.Tensor, n: int) -> torch.Tensor:
        """(B, K, C) at ids_keep -> (B, n, C) with the mask token at removed positions."""
        B, _, C = x.shape
        full = self.mask_token.to(x.dtype).expand(B, n, C)
        return full.scatter(1, ids_keep[..., None].expand(-1, -1, C), x)

    def global_embeddings(self, batch: dict[str, torch.Tensor], masks: dict,
                          tokens: dict[str, torch.Tensor], gather=None) -> dict[str, torch.Tensor]:
        """Unimodal passes: each modality attends only to its own tokens, so its global
        embedding never sees another modality (what a search-time query sees alone)."""
        keep_v, keep_a = self.global_token_ids(batch["video"].shape[0], batch["video"].device, masks)
        video = self.encoder(_select_tokens(tokens["video"], keep_v))
        z = {
            "video": self.pool(video, "video", gather=gather),
            "text": self.embed_text_ids(batch["text"], batch["text_mask"], gather),
        }
        if keep_v is None:  # every patch's output: what a patch map reads (train/map_teacher.py)
            z["video_tokens"] = video
        if self.config.loss.matching == "audio" and self.config.audio.tower != "shared":
            z["audio"] = self.embed_audio_input(batch[TOWER_WAVE], gather)
        elif self.config.loss.matching == "audio":
            z["audio"] = self.pool(self.encoder(_select_tokens(tokens["audio"], keep_a)), "audio", gather=gather)
        return z

    def global_token_ids(self, B: int, device: torch.device, masks: dict) -> tuple:
        """The video and audio patches the unimodal passes see in training (None: all of them)."""
        loss = self.config.loss
        if loss.global_tokens == "visible":
            return masks["video"][0], masks["audio"][0]
        if loss.global_tokens == "sampled":
            return self.mask_video(B, device, 1 - loss.global_keep)[0], self.mask_audio(B, device, 1 - loss.global_keep)[0]
        return None, None

    def global_losses(self, z: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                      gather=None) -> dict[str, torch.Tensor]:
        """Audio matching (audio<->video, audio<->text) or the video<->text ablation: symmetric
        InfoNCE plus the binary matching head, on rows where both modalities exist."""
        has_v, has_a, has_t = batch["has_video"], batch["has_audio"], batch["has_text"]
        if self.config.loss.matching == "audio":
            pairs = {"av": ("audio", "video", has_a & has_v), "at": ("audio", "text", has_a & has_t)}
        else:
            pairs = {"vt": ("video", "text", has_v & has_t)}
        scale = self.logit_scale_clamped()
        terms = {}
        for name, (x, y, valid) in pairs.items():
            terms[f"nce_{name}"] = contrastive_loss(z[x], z[y], scale, valid, gather)
            if self.config.loss.matching_head:
                terms[f"match_{name}"] = matching_loss(self.match_head, z[x], z[y], valid, gather)
        if self.config.text.teacher is not None:
            loss = self.config.loss
            teacher = self.text_teacher(batch["text"], batch["text_mask"])
            terms["text_distill"] = loss.distill_weight * similarity_distillation(
                z["text"], teacher, has_t, loss.distill_temperature, gather)
        if self.config.audio.teacher is not None:  # validate(): z["audio"] is the shared path's
            loss = self.config.loss
            teacher = self.audio_teacher(batch[TOWER_WAVE])
            terms["audio_distill"] = loss.distill_weight * similarity_distillation(
                z["audio"], teacher, has_a, loss.distill_temperature, gather)
        return terms


MODALITIES = ("video", "audio", "text")
LOCAL_TERMS = ("video_mse", "audio_mse", "text_mlm")


def _key_valid(present: list[torch.Tensor], sizes: list[int], text_mask: torch.Tensor) -> torch.Tensor:
    """Which keys a joint pass may attend to: all tokens of present modalities, real text tokens."""
    parts = [p[:, None].expand(-1, n) for p, n in zip(present, sizes, strict=True)]
    return torch.cat([*parts, text_mask], dim=1)


def _removed_from_keep(ids_keep: torch.Tensor, n: int) -> torch.Tensor:
    removed = torch.ones(ids_keep.shape[0], n, dtype=torch.bool, device=ids_keep.device)
    return removed.scatter(1, ids_keep, False)
