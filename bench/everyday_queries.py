"""Ten everyday text queries on the demo library plus real sounds, as a new user would try them.

    python bench/everyday_queries.py --checkpoint C --demo-dir /tmp/demo [--shared-media DIR]
    python bench/everyday_queries.py --checkpoint C --demo-dir /tmp/demo --no-shared-media \
        --manifest CORPUS/manifest.jsonl --group heldout-package

Builds (or reuses) the demo library in --demo-dir with the checkpoint (`prepare_demo`: the
synthetic clips and the real media shipped in the package) with --shared-media added (default:
the shared test media, as `vlsa demo --add` adds them), then searches each
query (top 5, one result per file) and counts results that are relevant: a file whose caption
(the shipped media's manifest) or label (the shared media's labels.jsonl name and category) holds
one of the query's words. Synthetic clips are never relevant. `--manifest` adds the sounds (kind
`sound`) of a corpus manifest's rows in `--group` (copied into the demo folder, described by their
captions): a held-out package, for a checkpoint that trained on the shared media. Prints each query's top 5 and the
totals; `--json` for the numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # mediagen: where the shared media live

from mediagen import SHARED_MEDIA  # noqa: E402

from app.demo import prepare_demo, shipped_media  # noqa: E402
from catalog.model import load_model  # noqa: E402
from catalog.service import SearchService  # noqa: E402
from catalog.store import Catalog  # noqa: E402

# query -> words of which one must be in a relevant file's caption or label
QUERIES = {
    "a dog barks": ("dog",),
    "someone plays the piano": ("piano",),
    "a bell rings": ("bell",),
    "a cat meows": ("cat",),
    "a bird sings": ("bird",),
    "a car passes by": ("car",),
    "a door closes": ("door",),
    "water drips": ("water", "drip", "drop"),
    "a baby cries": ("baby",),
    "someone laughs": ("laugh",),
}


def descriptions(shared: Path | None) -> dict[str, str]:
    """Real path -> the words that describe the file (caption or label)."""
    out = {}
    media = shipped_media()
    if media:
        for line in (media / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            out[str((media / (row.get("video") or row["audio"])).resolve())] = row["text"]
    if shared and (shared / "sounds" / "labels.jsonl").is_file():
        for line in (shared / "sounds" / "labels.jsonl").read_text().splitlines():
            row = json.loads(line)
            out[str((shared / row["path"]).resolve())] = f"{row['name']} {row['category']}".lower()
    return out


def add_held_out(manifest: Path, group: str, folder: Path) -> dict[str, str]:
    """Copy the sounds of `manifest`'s rows in `group` into `folder`; real path -> caption."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("group") != group or row.get("kind") != "sound" or not row.get("audio"):
            continue
        target = folder / Path(row["audio"]).name
        if not target.exists():
            shutil.copyfile(manifest.parent / row["audio"], target)
        out[str(target.resolve())] = row["text"]
    return out


def relevant(words: tuple[str, ...], description: str) -> bool:
    tokens = description.lower().replace("_", " ").split()
    return any(t.startswith(w) for w in words for t in tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--demo-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--shared-media", type=Path, default=SHARED_MEDIA)
    parser.add_argument("--no-shared-media", action="store_true", help="leave the shared media out")
    parser.add_argument("--manifest", type=Path, help="add the sounds of this manifest's --group rows")
    parser.add_argument("--group", default="heldout-package")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.demo_dir or Path(tempfile.mkdtemp(prefix="vlsa-everyday-"))
    shared = args.shared_media if args.shared_media and args.shared_media.is_dir() and not args.no_shared_media else None
    held = add_held_out(args.manifest, args.group, folder / "held-out") if args.manifest else {}
    add = ([shared] if shared else []) + ([folder / "held-out"] if held else [])
    demo = prepare_demo(folder, add=add, checkpoint=args.checkpoint)
    model, _ = load_model(str(demo.checkpoint))
    known = {**descriptions(shared), **held}
    results, total = {}, 0
    with Catalog(demo.db) as catalog:
        service = SearchService(catalog, model)
        for query, words in QUERIES.items():
            hits = service.search_text(query, top=5, per_file=True)
            rows = []
            for hit in hits:
                description = known.get(str(Path(hit.path).resolve()))
                ok = description is not None and relevant(words, description)
                rows.append({"file": Path(hit.path).name, "about": description or "synthetic clip",
                             "relevant": ok, "score": round(hit.score, 3)})
            results[query] = rows
            total += sum(r["relevant"] for r in rows)
    summary = {"relevant_in_top5": total, "places": 5 * len(QUERIES), "checkpoint": str(demo.checkpoint),
               "queries_with_a_relevant_file": sum(any(r["relevant"] for r in rows) for rows in results.values())}
    if args.json:
        print(json.dumps({"summary": summary, "queries": results}, indent=1))
        return
    for query, rows in results.items():
        print(f"{query!r}: {sum(r['relevant'] for r in rows)} of 5")
        for r in rows:
            print(f"   {'+' if r['relevant'] else ' '} {r['score']:.3f}  {r['about']}")
    print(f"relevant results in the top 5: {total} of {summary['places']}; "
          f"queries with a relevant file in the top 5: {summary['queries_with_a_relevant_file']} of {len(QUERIES)}")


if __name__ == "__main__":
    main()
