"""tests/requires.py: what a test needs is a skip on a developer's machine, a failure under CI."""

import pytest
from requires import SHARED_MEDIA_VARIABLE, require_shared_media, unavailable

FAILED, SKIPPED = pytest.fail.Exception, pytest.skip.Exception


def outcome(call, *args) -> tuple[type, str]:
    """What `call(*args)` ended the test with: FAILED or SKIPPED and the message. Both are caught
    here, as a skip escaping this test would only skip it: it could never fail."""
    with pytest.raises((FAILED, SKIPPED)) as e:
        call(*args)
    return e.type, str(e.value)


@pytest.mark.parametrize("ci", ["true", None], ids=["ci", "developer"])
def test_require_shared_media_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch, ci):
    """The shared media missing: under CI=true pytest.fail's exception, elsewhere pytest.skip's.

    Catches the CI check dropped (a CI checkout without ../shared/media passes, its tests skipped)
    and the variable read once at import (the test's own settings would be ignored)."""
    monkeypatch.setenv(SHARED_MEDIA_VARIABLE, str(tmp_path / "missing"))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    ended, message = outcome(require_shared_media, "video", "bikes.mp4")
    assert ended is (FAILED if ci else SKIPPED) and "no shared media" in message


def test_require_shared_media_gives_the_path_where_it_is(tmp_path, monkeypatch):
    """Catches the helper failing where the media are present, or naming another path."""
    (tmp_path / "video").mkdir()
    monkeypatch.setenv(SHARED_MEDIA_VARIABLE, str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert require_shared_media() == tmp_path
    assert require_shared_media("video") == tmp_path / "video"


@pytest.mark.parametrize(("ci", "expected"), [("true", FAILED), ("True", FAILED), ("1", FAILED),
                                              ("false", SKIPPED), ("0", SKIPPED)])
def test_unavailable_is_a_failure_only_under_ci(monkeypatch, ci, expected):
    """CI=true (or 1), as CI services set it, makes a missing tool a failure; false or 0 do not.

    Catches `unavailable` skipping under CI (chromium or sqlite-vec missing there would pass)."""
    monkeypatch.setenv("CI", ci)
    ended, message = outcome(unavailable, "no chromium")
    assert ended is expected and message.startswith("no chromium")
