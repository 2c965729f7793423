"""The names of a model's sound vectors, readable without torch (the catalog's text search needs
none): a checkpoint with a pretrained audio tower gives each sound two vectors, the joint one
("audio", matched with words and pictures) and the tower's own (TOWER_VECTORS), which compares
one sound with another better (docs/REAL_MEDIA.md)."""

from __future__ import annotations

from collections.abc import Collection

# The key of a tower's own sound vectors beside the joint 'audio' ones (VLSAModel.embed_audio_vectors),
# and the catalog's modality for them: what one sound is compared with another by.
TOWER_VECTORS = "audio_tower"
# With audio.tower_residual, the shared path's pooled audio (VLSAModel.shared_audio) that the
# tower's adapter adds to: what `vlsa fit-tower` keeps per row; never a catalog's.
SHARED_AUDIO = "audio_shared"


def example_modality(modalities: Collection[str]) -> str:
    """Of the vectors there are of sounds (the keys VLSAModel.embed_audio_vectors gives, or a
    catalog's modalities), the one that compares a sound with other sounds: the tower's own
    where there, else the joint "audio"."""
    return TOWER_VECTORS if TOWER_VECTORS in modalities else "audio"
