"""The README's pictures (docs/app-*.png) were taken with the checkpoint that ships: the one
`vlsa demo` indexes with, whose fingerprint bench/screenshot.py records beside them."""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
RECORD = DOCS / "app-screenshots.json"  # bench/screenshot.py's RECORD


def test_screenshots_record_the_shipped_checkpoint():
    """Catches a change of the shipped checkpoint (vlsa/assets/real) without taking the screenshots
    again (`python bench/screenshot.py --dir DEMO_DIR --out-dir docs`): the README would show
    another model's results."""
    from vlsa.checkpoint import SHIPPED, fingerprint

    made = json.loads(RECORD.read_text())
    assert made["fingerprint"] == fingerprint(SHIPPED), (
        f"docs/app-*.png were taken with checkpoint {made['fingerprint']}, the shipped one is "
        f"{fingerprint(SHIPPED)}: run bench/screenshot.py")
    assert made["text_query"] and made["sound_query"] and made["date"]
    for name in ("app-text.png", "app-result.png", "app-sound.png"):
        assert (DOCS / name).is_file(), name
