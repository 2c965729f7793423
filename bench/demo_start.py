"""Benchmark `vlsa demo` start-up: wall seconds from the command to a served page and a text
search answered through the API, on the first run (generate, index, serve) and the second (reuse).

    python bench/demo_start.py                      # 64 clips in a fresh temporary folder
    python bench/demo_start.py --clips 8 --dir /tmp/demo --add SHARED_MEDIA

Each run: `vlsa demo --no-browser --dir DIR --clips N --port FREE`; the clock stops when GET / has
answered 200 and /search_text (through gradio_client) has returned results; then the server is
stopped. Prints JSON: first and second start seconds, each split into page-up and first search.
The issue's targets (5 minutes from a fresh clone including set-up, 30 s on a second start) are
read off this, never asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VLSA_BIN = Path(sys.executable).with_name("vlsa")
UP_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vlsa demo exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"vlsa demo did not answer in {UP_TIMEOUT:.0f} s:\n{log.read_text()}")


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_start(folder: Path, clips: int, add: list[str], log: Path) -> dict:
    from gradio_client import Client

    port = free_port()
    command = [str(VLSA_BIN), "demo", "--no-browser", "--dir", str(folder), "--clips", str(clips),
               "--port", str(port)] + [a for extra in add for a in ("--add", extra)]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    began = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_up(f"http://127.0.0.1:{port}/", proc, log)
        page = time.monotonic() - began
        caption = json.loads((folder / "library" / "manifest.jsonl").read_text().splitlines()[0])["text"]
        client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
        _, results, _ = client.predict(caption, api_name="/search_text")
        total = time.monotonic() - began
    finally:
        stop_process(proc)
    if not results:
        raise SystemExit(f"the text search returned nothing:\n{log.read_text()}")
    return {"page_up_s": round(page, 2), "page_and_search_s": round(total, 2), "results": len(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--dir", type=Path, help="Demo folder [default: a fresh temporary one, removed after].")
    parser.add_argument("--add", action="append", default=[], help="Passed on to vlsa demo --add.")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="vlsa-demo-bench-"))
    folder = args.dir or scratch / "demo"
    try:
        first = one_start(folder, args.clips, args.add, scratch / "first.log")
        second = one_start(folder, args.clips, args.add, scratch / "second.log")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"clips": args.clips, "added": args.add, "cpu_count": os.cpu_count(),
                      "first_start": first, "second_start": second}, indent=2))


if __name__ == "__main__":
    main()
