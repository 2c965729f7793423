"""VLSA: a tri-modal (video, audio, text) transformer after "Unified Video-Language Pre-training
with Synchronized Audio" (Mo et al., 2024).

    from vlsa import VLSA
    model = VLSA.from_preset("tiny")
    text = model.embed_text(["a dog barks"])
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import vlsa.config` (and the CLI's --help) does not pay for importing torch.
    if name == "VLSA":
        from vlsa.api import VLSA

        return VLSA
    raise AttributeError(name)


__all__ = ["VLSA", "__version__"]
