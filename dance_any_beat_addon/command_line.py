"""The arguments of `blender -b shot.blend -c dance_any_beat generate ...`; bpy-free (the bpy side is
`blender/command.py`).

Blender hands a registered command every argument after its id (`bpy.utils.register_cli_command`): here the
sub-command `generate`, then its options and, optionally, .blend files to process one after the other.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

COMMAND_ID = "dance_any_beat"
PROG = COMMAND_ID  # as in `blender -b shot.blend -c dance_any_beat generate ...`
STILL_CHOICES = {"scene": "SCENE", "sequencer": "SEQUENCER", "strip": "STRIP"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = f"""examples:
  blender -b shot.blend -c {COMMAND_ID} generate --save
  blender -b shot.blend -c {COMMAND_ID} generate --still dancer.png --audio song.wav --range 1 240 --save
  blender -b -c {COMMAND_ID} generate --detect-beats --save shot1.blend shot2.blend shot3.blend

Settings not given keep what is saved in each file's Dance panel. The beat markers in the range are the rhythm
(--detect-beats replaces the add-on's own markers with the music's beats first; with no markers the backend tracks
them). The result is an image strip at the range start on the first free channel; its frames are written under
//dance_any_beat/<job>/ next to the .blend. Without --save the file on disk is left unchanged.
exit status: 0 all files done, 1 a file failed (the others still run), 2 bad arguments."""


class UsageError(Exception):
    """Bad command-line arguments; the message says what is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit the whole Blender process
        raise UsageError(f"{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            raise UsageError(message.strip())
        raise _HelpShown()


class _HelpShown(Exception):
    pass


@dataclass
class GenerateArgs:
    blend_files: list[str] = field(default_factory=list)
    """Files to process in turn; empty: the file Blender has open."""
    scene: str | None = None
    still: str | None = None
    """"scene", "sequencer", "strip", an image file, or None (the panel's setting)."""
    audio: str | None = None
    """"timeline", an audio file, or None (the panel's setting)."""
    frame_range: tuple[int, int] | None = None
    detect_beats: bool = False
    style: str | None = None
    quality: str | None = None
    seed: int | None = None
    steps: int | None = None
    channel: int | None = None
    save: bool = False


def build_parser() -> argparse.ArgumentParser:
    """The parser of `generate`'s arguments (the sub-command itself is checked by `parse`)."""
    gen = _Parser(prog=f"{PROG} generate", description="Make a still dance to the music of a .blend's timeline "
                  "over the frame range and add the result as an image strip (the Dance panel's Generate, without "
                  "a window).", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("blend_files", nargs="*", metavar="FILE.blend",
                     help="files to process one after the other (default: the file Blender opened)")
    gen.add_argument("--scene", help="scene name (default: the file's active scene)")
    gen.add_argument("--still", metavar="scene|sequencer|strip|IMAGE",
                     help="the still: the scene render, the sequencer preview or the image strip at the current "
                          "frame, or an image file")
    gen.add_argument("--audio", metavar="timeline|FILE",
                     help="the music: the timeline mixdown over the range, or an audio file starting at the range "
                          "start")
    gen.add_argument("--range", nargs=2, type=int, metavar=("A", "B"), dest="frame_range",
                     help="first and last frame (default: the panel's range, normally the scene's)")
    gen.add_argument("--detect-beats", action="store_true",
                     help="place beat markers at the music's beats first (replaces only the add-on's own markers)")
    gen.add_argument("--style", help="dance style name (presets/styles.toml)")
    gen.add_argument("--quality", help="quality preset name (presets/quality.toml)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--steps", type=int, help="sampler steps per window (default: the quality preset's)")
    gen.add_argument("--channel", type=int, help="lowest channel for the result strip")
    gen.add_argument("--save", action="store_true", help="save each .blend after its strip was added")
    return gen


USAGE = (f"usage: blender -b [FILE.blend] -c {COMMAND_ID} generate [options] [FILE.blend ...]   "
         "(`generate --help` lists the options)")


def parse(argv: list[str]) -> GenerateArgs | None:
    """The parsed arguments, or None when help was asked for (it was printed). Raises UsageError."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        if argv:
            return None
        raise UsageError(f"{PROG}: error: name a command: generate")
    if argv[0] != "generate":
        raise UsageError(f"{PROG}: error: unknown command {argv[0]!r}; the command is: generate")
    try:
        ns = build_parser().parse_intermixed_args(argv[1:])
    except _HelpShown:
        return None
    args = GenerateArgs(**vars(ns))
    if args.frame_range is not None:
        a, b = args.frame_range
        if b < a or a < 0:
            raise UsageError(f"{PROG} generate: error: --range {a} {b}: give the first and then the last frame "
                             "(0 or more)")
        args.frame_range = (a, b)
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"{PROG} generate: error: --seed must be 0 or more, got {args.seed}")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise UsageError(f"{PROG} generate: error: --steps must be 1 to 1000, got {args.steps}")
    if args.channel is not None and not 1 <= args.channel <= 128:
        raise UsageError(f"{PROG} generate: error: --channel must be 1 to 128, got {args.channel}")
    bad = [f for f in args.blend_files if not f.lower().endswith(".blend")]
    if bad:
        raise UsageError(f"{PROG} generate: error: {bad[0]!r} is not a .blend file (options go before or after the "
                         "files; see --help)")
    return args
