"""The paper's benchmarks: what each asks, the paper's numbers to print beside ours, and that
table. train/protocols.py scores them (`vlsa eval --protocol NAME`)."""

from __future__ import annotations

from dataclasses import dataclass

SHOWN = ("R@1", "R@5", "R@10", "MedR")  # what the paper's tables report
DEFAULT_SEEDS = 3  # the paper reports the mean of 3 runs


@dataclass(frozen=True)
class Protocol:
    about: str  # the benchmark, in a line
    directions: tuple[str, ...]  # "query->candidate"
    all_captions: bool  # every caption of a clip is a query; else one a clip, its "text"
    # The paper's R@1, R@5, R@10 per direction and setting (Mo et al. 2024; docs/DESIGN.md,
    # "The paper"); None where it reports none.
    paper: dict[str, dict[str, tuple[float | None, float | None, float | None]]]


PROTOCOLS = {
    "msrvtt-1ka": Protocol("MSR-VTT 1k-A: 1,000 test videos, one caption each", ("text->video",), False,
                           {"text->video": {"fine-tuned": (27.1, 57.3, 68.9), "zero-shot": (20.4, 40.6, 53.8)}}),
    "lsmdc": Protocol("LSMDC: test clips, one caption each", ("text->video",), False,
                      {"text->video": {"": (19.3, None, None)}}),
    "audiocaps": Protocol("AudioCaps: test clips, every caption a query (5 a clip)", ("text->audio", "audio->text"),
                          True, {"text->audio": {"": (42.5, None, None)}}),
    "sounddescs": Protocol("SoundDescs: test sounds and their descriptions", ("text->audio", "audio->text"), True,
                           {"text->audio": {"": (33.5, 63.7, 75.1)}, "audio->text": {"": (34.2, 65.9, 76.3)}}),
    "youcook2": Protocol("YouCook2: a clip's sound finds its video", ("audio->video",), False,
                         {"audio->video": {"": (36.3, None, None)}}),
}


def format_protocol_table(result: dict) -> str:
    """Ours (mean ± std over the seeds) and the paper's, a row each per direction; a dash where
    the paper reports nothing."""
    protocol = PROTOCOLS[result["protocol"]]
    seeds = len(result["seeds"])
    width = 14
    header = f"{'direction':<14}{'':<22}" + "".join(f"{k:>{width}}" for k in SHOWN) + f"{'N':>8}"
    lines = [header, "-" * len(header)]
    for direction, mean in result["mean"].items():
        std = result["std"][direction]
        cells = "".join(f"{f'{mean[k]:.1f} ± {std[k]:.1f}':>{width}}" for k in SHOWN)
        lines.append(f"{direction:<14}{f'ours ({seeds} seeds)':<22}{cells}{int(mean['N']):>8}")
        for setting, numbers in protocol.paper.get(direction, {"": (None, None, None)}).items():
            paper = [*numbers, None]  # the paper reports no median rank
            cells = "".join(f"{'-' if v is None else f'{v:.1f}':>{width}}" for v in paper)
            lines.append(f"{direction:<14}{('paper ' + setting).strip():<22}{cells}")
    return "\n".join(lines)
