"""`vlsa train --init-clip`: an open_clip ViT-B/16 file mapped into the `base` preset.

The CLIP model is built with random weights (pretrained=None: nothing is downloaded) and every
parameter is then nudged off its initial value, so a LayerNorm or a bias that the mapping forgot
cannot pass by holding the same ones and zeros on both sides. Built once per module: ViT-B/16 is
86M parameters, and each test runs one short forward, no training.
"""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from train.state import TrainConfig
from train.trainer import build_model
from vlsa import VLSA
from vlsa.clip_init import CLIP_OVERRIDES, load_clip_weights, read_clip_state_dict

TOL = 1e-4
CLIP_TEXT_ONE_LAYER = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 1}


def _base_without_init() -> VLSA:
    """`base` as --init-clip builds it (with text.embed_dim=512, so CLIP's token table fits), every
    parameter 0.5 instead of its random initialisation: trunc_normal_ over 152M parameters takes
    10 s here, and the tests read only what the mapping writes. A constant, not empty memory
    (zeros, fresh from the system): a weight the mapping forgot must not pass by being zeros."""
    with torch.device("meta"):
        model = VLSA.from_preset("base", **CLIP_OVERRIDES, **{"text.embed_dim": 512})
    model.to_empty(device="cpu")
    for p in model.parameters():
        p.fill_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(open_clip ViT-B-16, our `base` with its weights loaded from the saved file, the file)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        # one text layer: the mapping reads only the visual tower and the token table
        clip = open_clip.create_model("ViT-B-16", pretrained=None, text_cfg=CLIP_TEXT_ONE_LAYER).eval()
        for p in clip.parameters():
            if p.ndim == 1:  # norms and biases start at ones and zeros, as ours do
                p.add_(0.02 * torch.randn_like(p))
        path = tmp_path_factory.mktemp("clip") / "vit-b-16.pt"
        torch.save(clip.state_dict(), path)
        ours = _base_without_init()
        load_clip_weights(ours, read_clip_state_dict(path), path)
    return clip, ours, path


@torch.no_grad()
def test_clip_init_blocks_map_tokens_as_clip(models):
    """Our encoder's 12 blocks map a token sequence exactly as open_clip's visual transformer
    blocks do. Catches: a transposed or re-ordered qkv (q, k, v or heads out of CLIP's order), the
    MLP's two layers swapped, ln_1 / ln_2 not mapped."""
    clip, ours, _ = models
    x = torch.randn(2, 24, 768, generator=torch.Generator().manual_seed(1))
    y = x
    for block in ours.encoder.blocks:
        y = block(y)
    assert torch.allclose(y, clip.visual.transformer(x), atol=TOL)


@torch.no_grad()
def test_clip_init_frame_tokens_equal_clip_patch_tokens(models):
    """Each frame's patch tokens with positions (and the modality embedding) are CLIP's: its
    patch embedding plus its positional embedding at the patch positions (the class token's
    dropped). Catches: the conv kernel flattened in (channel, row, col) order instead of
    patchify's (row, col, channel), the positional embedding dropped or shifted by the class
    token's row, a time position or modality embedding left at its random init."""
    clip, ours, _ = models
    video = torch.randn(1, 8, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    tokens = ours.tokens_video(video).view(1, 8, 196, 768)
    for t in (0, 7):
        expected = clip.visual.conv1(video[:, t]).flatten(2).transpose(1, 2) + clip.visual.positional_embedding[1:]
        assert torch.allclose(tokens[:, t], expected, atol=TOL), f"frame {t}"


@torch.no_grad()
def test_clip_init_encoder_and_projection_equal_clip_trunk(models):
    """A frame's patch tokens through our whole encoder equal CLIP's visual trunk without the
    class token (ln_pre, the blocks, ln_post), and their pooled embedding is CLIP's projection of
    the mean token. Catches: ln_pre or ln_post not mapped (or encoder.pre_norm not set), the
    projection not transposed."""
    clip, ours, _ = models
    v = clip.visual
    frame = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    tokens = (v.conv1(frame).flatten(2).transpose(1, 2) + v.positional_embedding[1:])[:, :32]
    expected = v.ln_post(v.transformer(v.ln_pre(tokens)))
    got = ours.encoder(tokens)
    assert torch.allclose(got, expected, atol=TOL)
    assert torch.allclose(ours.pool(got, "video"), F.normalize(expected.mean(1) @ v.proj, dim=-1), atol=TOL)


@torch.no_grad()
def test_clip_init_audio_patches_and_text_table(models):
    """A spectrogram patch is embedded as CLIP embeds that patch as a grey picture (its RGB
    kernels summed, as AST starts from ViT), and the token table is CLIP's for its 49,408 ids.
    Catches: the channels averaged instead of summed, the audio or token table left unmapped."""
    clip, ours, _ = models
    patch = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(4))
    expected = clip.visual.conv1(patch[:, None].expand(1, 3, 16, 16)).flatten(1)
    assert torch.allclose(ours.audio_embed(patch.reshape(1, 256)), expected, atol=TOL)
    assert torch.equal(ours.token_embed.weight[:49408], clip.token_embedding.weight)


def test_clip_init_refuses_a_file_that_does_not_fit(models, tmp_path):
    """A CLIP start of a preset that is not ViT-B/16-shaped, from a file that is not an open_clip
    state dict or from one that lacks a weight stops with a ValueError naming the reason (one
    line at the command), before any training; so does naming both --init and --init-clip.
    Catches: the shape check dropped (copy_'s shape error), a missing weight's KeyError (a
    traceback), --init silently winning over --init-clip."""
    _, _, path = models
    bad, cut = tmp_path / "bad.pt", tmp_path / "cut.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    torch.save({"visual.conv1.weight": torch.zeros(768, 3, 16, 16)}, cut)
    for preset, file, reason in (("tiny", path, "encoder.width 768, this model 128"),
                                 ("base", bad, "not an open_clip state dict"),
                                 ("tiny", cut, "no visual.positional_embedding")):
        tc = TrainConfig(manifest="unused.jsonl", preset=preset, init_clip=str(file))
        with pytest.raises(ValueError, match=reason):
            build_model(tc, torch.device("meta"))
    with pytest.raises(ValueError, match="both name a start"):
        TrainConfig(manifest="unused.jsonl", init=str(tmp_path), init_clip=str(path))
