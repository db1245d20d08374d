"""The `dance-any-beat` command.

Each subcommand is a thin layer over one backend function: it parses flags, turns progress into a bar and
errors into one readable line (exit status 2), and never holds logic of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dance_any_beat import __version__
from dance_any_beat.styles import STYLE_NAMES


class CliError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# ---------------------------------------------------------------------------------------------------- beats
def cmd_beats(args: argparse.Namespace) -> int:
    from dance_any_beat.music.audio import load_audio
    from dance_any_beat.music.beats import track_beats

    audio = load_audio(args.audio, start=args.start, seconds=args.seconds)
    track = track_beats(audio.samples, audio.sr, method=args.method)
    beats = [round(float(t) + args.start, 4) for t in track.beats]
    downbeats = [round(float(t) + args.start, 4) for t in track.downbeats]
    if args.json:
        result = {"tempo": round(float(track.tempo), 2), "beats": beats, "downbeats": downbeats,
                  "duration": round(float(track.duration), 4)}
        print(json.dumps(result))
        return 0
    print(f"{audio.source}: {track.tempo:.1f} BPM, {len(beats)} beats, {len(downbeats)} downbeats "
          f"in {track.duration:.2f} s (from {args.start:g} s)")
    print("beats (s):     " + " ".join(f"{t:.3f}" for t in beats))
    print("downbeats (s): " + " ".join(f"{t:.3f}" for t in downbeats))
    return 0


# --------------------------------------------------------------------------------------------- make-dataset
def cmd_make_dataset(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dance_any_beat.data.procedural import make_dataset

    bar = tqdm(total=args.num_clips, unit="clip", desc=f"{args.split} clips", disable=args.quiet)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    split_dir = make_dataset(
        Path(args.out), args.num_clips, split=args.split, seconds=args.seconds, fps=args.fps, size=args.size,
        styles=args.styles, workers=args.workers, progress=progress, overwrite=args.overwrite,
    )
    bar.close()
    print(f"wrote {args.num_clips} {args.split} clips to {split_dir}")
    return 0


# ----------------------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dance_any_beat.demo import EXAMPLE_TRACK, run_demo

    bar = tqdm(total=100, unit="%", desc="demo", disable=args.quiet, bar_format="{l_bar}{bar}| {elapsed}")

    def progress(fraction: float, stage: str) -> None:
        bar.set_description(stage)
        bar.update(round(fraction * 100) - bar.n)

    result = run_demo(Path(args.out), audio_path=Path(args.audio or EXAMPLE_TRACK), style=args.style,
                      seed=args.seed, progress=progress)
    bar.close()
    if args.json:
        print(json.dumps({
            "frames": result.frames, "fps": result.fps, "tempo": round(result.tempo, 2), "beats": result.beats,
            "beat_alignment": round(result.beat_alignment, 4), "frames_dir": str(result.frames_dir),
            "video": str(result.video), "beats_json": str(result.beats_json), "seconds": result.seconds,
        }))
        return 0
    print(f"tempo {result.tempo:.1f} BPM, {result.beats} beats -> {result.beats_json}")
    print(f"{result.frames} frames at {result.fps} fps -> {result.frames_dir}/000001.png ...")
    print(f"video with music -> {result.video}")
    print(f"beat alignment of the dance to the beats (BAS, 1 = every beat hit): {result.beat_alignment:.3f}")
    return 0


# -------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dance-any-beat",
        description="Make a still image dance to music (DabFusion). Run `dance-any-beat COMMAND --help` for "
        "each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    beats = commands.add_parser(
        "beats",
        help="find the beats, downbeats and tempo of a track",
        description="Track the beats of AUDIO (wav, flac, ogg or mp3). Times are seconds from the start of the "
        "file, also when --start picks a later window. Animators key on these, so the default tracker "
        "corrects the half/double-tempo mistakes librosa's plain tracker makes on backbeat drums.",
        epilog="example: dance-any-beat beats song.ogg --start 30 --seconds 10 --json",
    )
    beats.add_argument("audio", help="audio file to analyse")
    beats.add_argument("--start", type=_non_negative_float, default=0.0, help="seconds into the file to start (0)")
    beats.add_argument("--seconds", type=_positive_float, default=None, help="seconds to analyse (to the end)")
    beats.add_argument("--method", choices=("dab", "librosa"), default="dab",
                       help="dab: this project's tracker (default); librosa: librosa.beat.beat_track as-is")
    beats.add_argument("--json", action="store_true",
                       help='print one JSON object {"tempo", "beats", "downbeats", "duration"}')
    beats.set_defaults(func=cmd_beats)

    data = commands.add_parser(
        "make-dataset",
        help="render the procedural dance data set (dancer videos locked to synthesised music)",
        description="Render clips of a 2D dancer whose moves land on the beats of synthesised music, with exact "
        "ground truth (joints, beat times, tempo, style). Each clip is a folder with frames.mkv (lossless), "
        "audio.wav and clip.json. Splits use disjoint seed ranges, so train/val/test never overlap. "
        "Re-running resumes: finished clips are kept.",
        epilog="example: dance-any-beat make-dataset --out datasets/procedural --num-clips 2000 --split train",
    )
    data.add_argument("--out", required=True, help="data set folder (the split is written to OUT/SPLIT)")
    data.add_argument("--num-clips", type=int, default=2000, help="clips to render (2000)")
    data.add_argument("--split", choices=("train", "val", "test"), default="train", help="which seed range (train)")
    data.add_argument("--seconds", type=_positive_float, default=4.0, help="clip length in seconds (4)")
    data.add_argument("--fps", type=int, default=30, help="frames per second (30)")
    data.add_argument("--size", type=int, default=128, help="frame size in pixels, square (128)")
    data.add_argument("--styles", nargs="+", choices=STYLE_NAMES, default=None, metavar="STYLE",
                      help=f"only these styles (all): {', '.join(STYLE_NAMES)}")
    data.add_argument("--workers", type=int, default=None, help="processes (one per CPU core)")
    data.add_argument("--overwrite", action="store_true", help="replace a data set made with other settings")
    data.add_argument("--quiet", action="store_true", help="no progress bar")
    data.set_defaults(func=cmd_make_dataset)
    demo = commands.add_parser(
        "demo",
        help="the README's first command: beats of the bundled track and a dancer dancing on them",
        description="Track the beats of a track (the bundled example by default), render a procedural dancer "
        "whose moves land on those beats, and write OUT/frames/000001.png ..., OUT/dance.mp4 (with the music) "
        "and OUT/beats.json. Until the starter model is trained this shows the beat tracker and the data the "
        "model learns from.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (out/demo)")
    demo.add_argument("--audio", default=None, help="a track of your own (default: examples/example_track.ogg)")
    demo.add_argument("--style", choices=STYLE_NAMES, default="lock", help="dance style (lock)")
    demo.add_argument("--seed", type=int, default=0, help="picks the dancer's look and moves (0)")
    demo.add_argument("--json", action="store_true", help="print one JSON object with the results")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dance_any_beat.music.audio import AudioError

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, AudioError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"dance-any-beat {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dance-any-beat {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
