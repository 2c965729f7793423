"""`vlsa app` as a running server (see conftest.running_app): the named API endpoints through
gradio_client, the upload limits, and the file route refusing everything outside the library."""

import http.client
import os
import wave
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from requires import unavailable

from app.cli import app as app_command
from app.clips import write_wav
from vlsa.media import read_audio

pytestmark = pytest.mark.slow  # trains the fixture model and starts a server


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False, download_files=False)


def test_app_api_text_ranks_each_captions_clip_first(client, app_library):
    for clip, caption in zip(app_library.clips, app_library.captions, strict=True):
        gallery, results, status = client.predict(caption, api_name="/search_text")
        assert results[0]["file"] == str(clip), caption
        assert len(gallery) == len(results) and gallery[0]["caption"].startswith(clip.name)
        assert status.startswith(f"**{len(results)} results**")


def test_app_api_audio_ranks_each_clip_first_for_its_own_sound(client, app_library, tmp_path):
    for clip in app_library.clips:
        sound = tmp_path / f"{clip.stem}.wav"
        write_wav(read_audio(clip, 0.0, None, 16000).numpy(), 16000, sound)
        _, results, _ = client.predict(handle_file(sound), "any", "all folders", "any length", True,
                                       api_name="/search_audio")
        assert results[0]["file"] == str(clip)


def test_app_api_find_similar_and_filters(client, app_library):
    """Through the API: the filters reach the search, find similar leaves out the window it starts
    from, and its status names that file and moment in words. Catches a status that names a
    window number instead (issue 18, item 4)."""
    _, results, _ = client.predict(app_library.captions[0], "audio", str(app_library.clips[0].parent),
                                   "under 10 s", False, api_name="/search_text")
    assert {r["modality"] for r in results} == {"audio"}
    _, similar, status = client.predict(results[0]["window_id"], api_name="/find_similar")
    assert results[0]["window_id"] not in [r["window_id"] for r in similar]
    # the status names the file and the moment it started from, in words
    start, end = results[0]["start"], results[0]["end"]
    assert f"like {results[0]['name']} at {start:.1f}–{end:.1f} s" in status, status


def test_app_api_rejects_bad_uploads_with_clear_errors(client, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not a sound\n" * 100)
    with pytest.raises(AppError, match="notes.wav is not an audio file"):
        client.predict(handle_file(text), api_name="/search_audio")
    long = tmp_path / "long.wav"
    _silence(long, seconds=70, rate=8000)  # 560 kB: under the size limit, over the length limit
    with pytest.raises(AppError, match=r"long.wav is too long \(70 s; at most 60 s\)"):
        client.predict(handle_file(long), api_name="/search_audio")


def test_app_server_refuses_uploads_over_the_size_limit(running_app, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * int((running_app.upload_mb + 0.5) * 2**20))
    with open(big, "rb") as f:
        response = httpx.post(f"{running_app.url}/gradio_api/upload", files={"files": f}, timeout=30)
    assert response.status_code == 413


def _silence(path: Path, seconds: int, rate: int) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(1)  # 8-bit: a long file that stays under the upload size limit
        f.setframerate(rate)
        f.writeframes(bytes([128]) * rate * seconds)


# --- files -------------------------------------------------------------------------------------


def get(app, path: str) -> int:
    """Status of GET /gradio_api/file=<path>, sent as is (http.client neither quotes nor
    normalises `..`, so the server sees exactly what an attacker would send)."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        conn.request("GET", "/gradio_api/file=" + path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_app_serves_library_files(running_app, app_library):
    assert get(running_app, str(app_library.clips[0])) == 200


def test_app_refuses_files_outside_the_library(running_app, app_library, tmp_path):
    clips = app_library.clips[0].parent  # the library root the app serves
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    link = clips / "escape.mp4"
    link.symlink_to(secret)
    try:
        assert get(running_app, "/etc/passwd") == 403  # absolute path
        assert get(running_app, str(secret)) == 403
        assert get(running_app, f"{clips}/../manifest.jsonl") == 403  # traversal out of the root
        assert get(running_app, f"{clips}/%2e%2e/manifest.jsonl") == 403  # encoded traversal
        assert get(running_app, str(link)) == 403  # a symbolic link out of the root
        assert get(running_app, str(app_library.db)) == 403  # the catalog itself
    finally:
        link.unlink()


TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")  # Linux's tables of sockets, IPv4 and IPv6


def listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on `port`."""
    found = set()
    for table in TCP_TABLES:
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_app_binds_localhost_only(running_app):
    """Catches the app listening anywhere but 127.0.0.1 (0.0.0.0: every address). Only a machine
    without the tables (not Linux) skips: its listener missing from them is a failure (it was a
    skip, which a broken read of the tables passed through)."""
    if not any(os.path.exists(table) for table in TCP_TABLES):
        unavailable("no /proc/net/tcp here (not Linux)")
    assert listening(running_app.port) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_app_cli_defaults_are_safe():
    options = {p.name: p for p in app_command.params}
    assert options["host"].default == "127.0.0.1" and options["port"].default == 7860
    result = CliRunner().invoke(app_command, ["--db", "/nonexistent.db"])
    assert result.exit_code != 0 and "does not exist" in result.output
