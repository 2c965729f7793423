"""Files renamed into place that survive a power cut, not only a killed process.

A rename orders nothing on disk: after a crash, a file written and then renamed can sit under its
new name with none of its data (ext4's delayed allocation, XFS). So the data is flushed before
the rename, and the folder after it, which makes the rename itself durable. Every atomic write in
vlsa/ and train/ goes through here (tests/test_checkpoint.py checks the order).
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a folder's contents (a folder's: its names) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(partial: str | os.PathLike, target: str | os.PathLike) -> None:
    """os.replace(partial, target), `partial`'s data flushed before and the folder after."""
    fsync_path(partial)
    os.replace(partial, target)
    fsync_path(Path(target).parent)
