"""What the benchmark scripts share: the machine they ran on, held-out clips, U-Net call counting, tables.

Every script prints a plain-text table (the form RESULTS.md quotes) and, with `--json FILE`, writes the same
numbers plus `machine` for the record.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
STARTER = REPO / "checkpoints" / "starter"
TEST_SPLIT = REPO / "datasets" / "procedural" / "test"
EXAMPLE_STILL = REPO / "examples" / "example_still.png"
EXAMPLE_TRACK = REPO / "examples" / "example_track.ogg"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare a figure with their own: CPU, cores, torch, GPU, date."""
    info: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def held_out_clips(data: Path | None, count: int) -> list[Path]:
    """The first `count` clips of a procedural split never used in training: `data`, else datasets/procedural/test,
    else a fresh test split written to a temporary folder (same seeds as `make-dataset --split test`)."""
    from dance_any_beat.data.procedural import list_clips, make_dataset

    if data is not None:
        clips = list_clips(data)
        if len(clips) < count:
            raise SystemExit(f"{data} holds {len(clips)} finished procedural clips; {count} are needed")
        return clips[:count]
    if len(list_clips(TEST_SPLIT)) >= count:
        return list_clips(TEST_SPLIT)[:count]
    out = Path(tempfile.mkdtemp(prefix="dab_bench_clips_"))
    print(f"no held-out split at {TEST_SPLIT}: writing {count} test clips to {out}")
    return list_clips(make_dataset(out, count, split="test", workers=1))[:count]


@dataclass
class CallCount:
    calls: int = 0  # forward passes of the network
    samples: int = 0  # samples through it (a guided step is one call on a batch of 2 per clip)


@contextlib.contextmanager
def count_calls(module: torch.nn.Module) -> Iterator[CallCount]:
    """Count the forward passes of `module` (and the batch rows they carried) inside the block."""
    count = CallCount()

    def hook(_module: torch.nn.Module, args: tuple, _kwargs: dict | None = None) -> None:
        count.calls += 1
        count.samples += int(args[0].shape[0])

    handle = module.register_forward_pre_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Rows as a Markdown table; columns are (header, key, format), e.g. ("wall s", "wall", "{:.1f}")."""

    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        if isinstance(value, float) and value != value:  # NaN
            return "n/a"
        return fmt.format(value)

    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r, k, f) for _, k, f in columns) + " |" for r in rows]
    return "\n".join(lines)


def goal(met: bool, gap: str = "") -> str:
    return "met" if met else f"missed{f' ({gap})' if gap else ''}"


def save_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **results}, indent=1, default=str))
    print(f"wrote {path}")
