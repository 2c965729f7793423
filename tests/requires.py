"""What a test needs from the machine it runs on, and what it means when that is missing.

On a developer's machine a test whose shared media, browser or extension is missing is skipped,
with the reason in pytest's summary (`-ra`). Under CI (the environment variable CI set to
"true" or "1") it fails instead: CI has ../shared/media beside the clone, chromium and the venv's
packages, so a CI run that lacks one of them must not pass with the tests that need it left out.

    path = require_shared_media("video", "bikes.mp4")   # the path, else skip (CI: fail)
    if not tool_works():
        unavailable("no such tool here")                 # skip (CI: fail)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

SHARED_MEDIA_VARIABLE = "VLSA_SHARED_MEDIA"


def on_ci() -> bool:
    """Whether this run is CI's (CI=true, as CI services set it; 1 too); read at each call, so a
    test can set it."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for `reason`; under CI fail it, as CI must have what it lacks."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: CI has it, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def shared_media() -> Path:
    """The real recordings: $VLSA_SHARED_MEDIA, else shared/media beside the checkout (where CI puts it)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "media"
    return Path(os.environ.get(SHARED_MEDIA_VARIABLE, default))


def require_shared_media(*parts: str) -> Path:
    """The shared media folder, or the file or folder `parts` inside it; skipped (CI: failed) if missing."""
    path = shared_media().joinpath(*parts)
    if not path.exists():
        unavailable(f"no shared media at {path} (set {SHARED_MEDIA_VARIABLE})")
    return path
