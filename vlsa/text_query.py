"""Words -> a query vector without PyTorch: the text path exported to ONNX, run by ONNX Runtime.

    write_export(model, "library.db-text-<fingerprint>.onnx", model.fingerprint())   # with torch, once
    encoder = TextQueryEncoder.open(path, fingerprint)     # None: no usable export, use the model
    encoder.embed(["a dog barks"])                         # (1, E) float32, L2-normalised

A text search that loads the model pays for importing torch (1.5 s) and building the text tower's
MiniLM through transformers (2 s) before it embeds eight words (docs/PERFORMANCE.md). For a
checkpoint with a pretrained text tower (text.tower), what `VLSA.embed_text` computes (the frozen
sentence encoder, the trained adapter, pool norm and projection, the L2 norm) is one fixed function
of the token ids, so it is exported once (`write_export`, by `vlsa index` and `vlsa demo`) and run
here with onnxruntime and the `tokenizers` library, neither of which imports torch.

The export records the model's fingerprint (VLSA.fingerprint, the one a catalog records) and the
tokenizer it was made with; `TextQueryEncoder.open` refuses a file made for another fingerprint,
so a re-trained or swapped checkpoint never embeds with a stale export. `fast_tokenizer` is the one
home of how words become ids: vlsa.tokenizer's HFTokenizer encodes through it too.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlsa.durable import replace_durably

log = logging.getLogger(__name__)

# What the export file records (ONNX metadata), beside the graph.
FINGERPRINT, TOKENIZER, MAX_LEN, PAD_ID = "vlsa.fingerprint", "vlsa.tokenizer", "vlsa.max_len", "vlsa.pad_id"
EXAMPLE = "a dog barks"  # the text the graph is traced with; its length is a dynamic axis
OPSET = 17


def fast_tokenizer(spec: str, max_len: int):
    """A `tokenizers.Tokenizer` from its JSON `spec`, cutting each text to `max_len` ids (its
    start and end tokens kept, as transformers' `truncation=True, max_length=max_len` does) and
    padding nothing: the one tokenisation of the torch path and the ONNX path alike."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(spec)
    tokenizer.enable_truncation(max_len)
    tokenizer.no_padding()
    return tokenizer


def token_ids(tokenizer, texts: Sequence[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), int64 (B, L) with L the longest text's ids: columns of padding past it change
    nothing but the cost (the sentence encoder masks them out; SentenceEncoder.forward drops them)."""
    rows = [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]
    ids = np.full((len(rows), max(map(len, rows), default=0)), pad_id, np.int64)
    mask = np.zeros_like(ids)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1
    return ids, mask


class TextQueryEncoder:
    """An exported text path: texts -> (N, E) float32 unit vectors, as the model's embed_text."""

    def __init__(self, session, tokenizer, pad_id: int):
        self.session, self.tokenizer, self.pad_id = session, tokenizer, pad_id

    @classmethod
    def open(cls, path: str | os.PathLike, fingerprint: str) -> TextQueryEncoder | None:
        """The export at `path` if it was made for the model `fingerprint`; None where there is no
        usable one (no file, onnxruntime not installed, a file it cannot read, another model's):
        the caller then embeds with the model itself, slower but the same vectors."""
        if not os.path.isfile(path):
            return None
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: its warnings are about graph fusions
            # One thread, not spinning: a query of a few words runs in milliseconds, and threads
            # spinning for work slowed it many times over on a loaded machine.
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
            meta = session.get_modelmeta().custom_metadata_map
            if meta.get(FINGERPRINT) != fingerprint:
                log.info("%s: made for model %s, not %s: not used", path, meta.get(FINGERPRINT), fingerprint)
                return None
            return cls(session, fast_tokenizer(meta[TOKENIZER], int(meta[MAX_LEN])), int(meta[PAD_ID]))
        except Exception as exc:  # whatever stops the export from loading, the model still can
            log.info("%s: not used (%s)", path, exc)
            return None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        ids, mask = token_ids(self.tokenizer, texts, self.pad_id)
        (vectors,) = self.session.run(None, {"ids": ids, "mask": mask})
        return vectors.astype(np.float32, copy=False)


def can_export(model) -> bool:
    """Whether `model`'s text path can be exported: a pretrained text tower read through a
    `tokenizers` tokenizer. The shared text path (CLIP's BPE) is embedded by the model."""
    return model.config.text.tower != "shared" and getattr(model.tokenizer, "spec", None) is not None


def write_export(model, path: str | os.PathLike, fingerprint: str) -> Path:
    """Export `model`'s text path (embed_text_ids) to ONNX at `path`, recording `fingerprint` and
    its tokenizer; written under a temporary name and renamed, so a killed run leaves no half file.
    Needs torch and the onnx package (torch's exporter writes through it)."""
    import onnx
    import torch

    class TextPath(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.model.embed_text_ids(ids, mask.bool())

    began, path = time.perf_counter(), Path(path)
    tokenizer = model.tokenizer
    ids, mask = (torch.from_numpy(a).to(model.device) for a in token_ids(tokenizer.fast, [EXAMPLE], tokenizer.pad_id))
    partial = path.with_name(path.name + ".partial")
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        model.embed_text_ids(ids, mask.bool())  # untraced first: the text tower reads its weights on first use
        # The exporter warns of every Python value the tracer sees in transformers' BERT (shapes,
        # flags) and of its own deprecation; none varies with the input here, and the export is
        # checked against the model (tests/test_text_query.py).
        warnings.simplefilter("ignore")
        torch.onnx.export(TextPath().eval(), (ids, mask), str(partial), dynamo=False, opset_version=OPSET,
                          input_names=["ids", "mask"], output_names=["embedding"],
                          dynamic_axes={"ids": {0: "texts", 1: "tokens"}, "mask": {0: "texts", 1: "tokens"},
                                        "embedding": {0: "texts"}})
    graph = onnx.load(str(partial))
    onnx.helper.set_model_props(graph, {FINGERPRINT: fingerprint, TOKENIZER: tokenizer.spec,
                                        MAX_LEN: str(tokenizer.max_len), PAD_ID: str(tokenizer.pad_id)})
    onnx.save(graph, str(partial))
    replace_durably(partial, path)
    log.info("%s: text path exported in %.1f s", path, time.perf_counter() - began)
    return path
