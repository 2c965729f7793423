"""Start the shared encoder from a local open_clip ViT-B/16 file (`vlsa train --init-clip FILE`).

The paper names CLIP initialisation as future work. FILE is an open_clip CLIP state dict saved
with `torch.save` (an open_clip training checkpoint, `{"state_dict": ...}` with DDP's `module.`
prefixes, also reads); nothing is downloaded. To make one from weights you have locally:

    torch.save(open_clip.create_model("ViT-B-16", pretrained="/path/to/weights.bin").state_dict(), "clip.pt")

What maps where (CLIP's name -> ours), and how our layout differs:
- `visual.conv1.weight` (D, 3, p, p) -> `video_embed.weight` (D, p*p*3): a convolution whose
  stride is its kernel is one linear map per patch; its kernel is flattened in patchify_video's
  (row, column, channel) order. CLIP's conv has no bias: ours is set to zero.
- the same kernel summed over its RGB channels -> `audio_embed.weight` (AST's start from ViT):
  a spectrogram patch is embedded as CLIP embeds that patch as a grey picture.
- `visual.positional_embedding[1:]` (g*g, D) -> the video positions' spatial table; their time
  table and the video modality embedding are zero, so every frame's patch tokens are exactly
  CLIP's. CLIP's class token and its position have no counterpart (we mean-pool the patches).
- `visual.ln_pre` -> `encoder.norm_pre` (the `encoder.pre_norm` switch in CLIP_OVERRIDES).
- `visual.transformer.resblocks.i` -> `encoder.blocks.i`: ln_1 -> norm1, attn.in_proj (q, k
  and v stacked, each split into heads in order: our fused qkv's layout) -> attn.qkv,
  attn.out_proj -> attn.proj, ln_2 -> norm2, mlp.c_fc -> mlp.0, mlp.c_proj -> mlp.2.
- `visual.ln_post` -> `encoder.norm`; `visual.proj` (D, E) -> `proj.video` (E, D), transposed.
- `token_embedding.weight` (49408, 512) -> the first 49,408 rows of `token_embed` when the
  tokenizer is CLIP's BPE and the table is 512 wide (`text.embed_dim=512`); our extra [MASK]
  row keeps its own initialisation. CLIP's text transformer is 512 wide, ours 768: not mapped.
Everything else (audio and text positions, the decoder, the heads) keeps its initialisation.

Blocks use exact GELU: open_clip's `ViT-B-16` (LAION, DataComp weights) maps exactly; OpenAI's
weights were trained with QuickGELU (`ViT-B-16-quickgelu`), so with them each MLP's activation
differs slightly from the one they learnt with.
"""

from __future__ import annotations

import os

import torch

from vlsa.model import VLSAModel

# Model settings a CLIP start needs: CLIP normalises the tokens before its first block.
CLIP_OVERRIDES = {"encoder.pre_norm": True}
CLIP_VOCAB = 49408  # open_clip's BPE vocabulary; our "clip" tokenizer adds one [MASK] id after it

_BLOCK_NAMES = {  # ours -> CLIP's, inside one block
    "norm1.weight": "ln_1.weight", "norm1.bias": "ln_1.bias",
    "attn.qkv.weight": "attn.in_proj_weight", "attn.qkv.bias": "attn.in_proj_bias",
    "attn.proj.weight": "attn.out_proj.weight", "attn.proj.bias": "attn.out_proj.bias",
    "norm2.weight": "ln_2.weight", "norm2.bias": "ln_2.bias",
    "mlp.0.weight": "mlp.c_fc.weight", "mlp.0.bias": "mlp.c_fc.bias",
    "mlp.2.weight": "mlp.c_proj.weight", "mlp.2.bias": "mlp.c_proj.bias",
}


def read_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """An open_clip CLIP state dict from a torch.save file (tensors only: nothing is executed).
    A file that is not one is a ValueError naming it."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except Exception as exc:  # pickle, zip and torch errors vary with the damage
        raise ValueError(f"{path}: not a torch.save file of tensors ({type(exc).__name__}); save "
                         "open_clip's model.state_dict() with torch.save") from None
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        blob = blob["state_dict"]  # an open_clip training checkpoint
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path}: not an open_clip state dict (not a dict of tensors)")
    state = {k.removeprefix("module."): v for k, v in blob.items()}
    if "visual.conv1.weight" not in state:
        raise ValueError(f"{path}: not an open_clip state dict (no visual.conv1.weight)")
    return state


def clip_encoder_weights(model: VLSAModel, clip: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """Our names -> tensors for the shared encoder, the patch embeddings, the video positions and
    projection, from CLIP's visual tower. Shapes that do not fit, or a weight the file lacks, are
    a ValueError."""
    try:
        return _encoder_weights(model.config, clip, path)
    except KeyError as exc:
        raise ValueError(f"{path}: not an open_clip ViT state dict (no {exc.args[0]})") from None


def _encoder_weights(cfg, clip: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    conv, pos = clip["visual.conv1.weight"], clip["visual.positional_embedding"]
    width, _, patch, _ = conv.shape
    depth = len({k.split(".")[3] for k in clip if k.startswith("visual.transformer.resblocks.")})
    grid = round((pos.shape[0] - 1) ** 0.5)
    enc, v = cfg.encoder, cfg.video
    for name, ours, theirs in (("encoder.width", enc.width, width), ("encoder.depth", enc.depth, depth),
                               ("video.patch", v.patch, patch), ("audio.patch", cfg.audio.patch, patch),
                               ("video grid", v.grid, grid)):
        if ours != theirs:
            raise ValueError(f"{path}: the CLIP file has {name} {theirs}, this model {ours} "
                             "(a CLIP start needs the ViT-B/16-shaped base preset)")
    if v.stem != "linear":
        raise ValueError(f"a CLIP start needs linear patch embeddings (video.stem=linear), not {v.stem!r}")
    if not enc.pre_norm:
        raise ValueError("a CLIP start needs encoder.pre_norm=true (CLIP_OVERRIDES)")
    if clip["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] != int(enc.width * enc.mlp_ratio):
        raise ValueError(f"{path}: the CLIP file's MLP width does not fit encoder.mlp_ratio {enc.mlp_ratio}")
    out = {
        "video_embed.weight": conv.permute(0, 2, 3, 1).reshape(width, -1),  # patchify: (row, col, channel)
        "video_embed.bias": torch.zeros(width),
        "audio_embed.weight": conv.sum(dim=1).reshape(width, -1),
        "audio_embed.bias": torch.zeros(width),
        "positions.video.col": pos[1:][None],  # without the class token's row
        "positions.video.row": torch.zeros(v.frames, 1, width),
        "modality.video": torch.zeros(width),
        "encoder.norm_pre.weight": clip["visual.ln_pre.weight"], "encoder.norm_pre.bias": clip["visual.ln_pre.bias"],
        "encoder.norm.weight": clip["visual.ln_post.weight"], "encoder.norm.bias": clip["visual.ln_post.bias"],
    }
    for i in range(depth):
        for ours, theirs in _BLOCK_NAMES.items():
            out[f"encoder.blocks.{i}.{ours}"] = clip[f"visual.transformer.resblocks.{i}.{theirs}"]
    if "visual.proj" in clip and clip["visual.proj"].shape == (width, cfg.embed_dim):
        out["proj.video.weight"] = clip["visual.proj"].T
    return out


def load_clip_weights(model: VLSAModel, clip: dict[str, torch.Tensor], path: str | os.PathLike) -> str:
    """Copy CLIP's visual tower (and its token table where it fits) from `clip`, the state dict
    read_clip_state_dict read from `path`, into `model`, in place. Returns one line saying what
    was taken, for the log."""
    weights = clip_encoder_weights(model, clip, path)
    taken = "the shared encoder, video and audio patch embeddings, video positions"
    if "proj.video.weight" in weights:
        taken += ", the video projection"
    table = clip.get("token_embedding.weight")
    if (table is not None and model.config.text.tokenizer == "clip" and model.config.text.tower == "shared"
            and table.shape == (CLIP_VOCAB, model.token_embed.weight.shape[1])):
        weights["token_embed.weight"] = torch.cat([table, model.token_embed.weight[CLIP_VOCAB:].detach().cpu()])
        taken += ", the token table"
    else:
        width = "its" if table is None else table.shape[1]
        taken += f"; not the token table (it fits text.tokenizer=clip with text.embed_dim={width})"
    state = model.state_dict()
    with torch.no_grad():
        for name, value in weights.items():
            state[name].copy_(value.to(state[name].dtype))
    return f"{path}: from CLIP: {taken}"
