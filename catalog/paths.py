"""Paths as the catalog holds them: absolute, not resolved (a link stays the name it was found
under), and `str` with surrogate escapes where a name is not UTF-8, which opens the same file."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

DEMO_CATALOG = "demo.db"  # the catalog's name in the demo folder


def demo_dir() -> Path:
    """Where `vlsa demo` keeps its library and catalog (app/demo.py), which `vlsa search` searches
    when no catalog is named: $VLSA_DEMO_DIR, else ${XDG_CACHE_HOME:-~/.cache}/vlsa/demo."""
    if os.environ.get("VLSA_DEMO_DIR"):
        return Path(os.environ["VLSA_DEMO_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vlsa" / "demo"


def display_path(path: str | bytes) -> str:
    """A printable path: bytes that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def is_under(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or inside it, both made absolute, compared by components."""
    p, f = PurePath(os.path.abspath(path)), PurePath(os.path.abspath(folder))
    # A root holds every absolute path, "//x" too ("//" is the root "/" on Linux).
    return f == PurePath(f.anchor) or p.is_relative_to(f)
