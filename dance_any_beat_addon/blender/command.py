"""`blender -b shot.blend -c dance_any_beat generate ...`: the Dance panel's Generate from the command line.

`run(argv)` is the handler given to `bpy.utils.register_cli_command` (Blender passes every argument after the
command id and exits with the returned status). It also serves the `--python-expr` fallback through
`dance_any_beat_addon.command`. In background mode the operators block, so each file is done when its call
returns; several files run one after the other against one backend.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from .. import backend
from ..command_line import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, STILL_CHOICES, USAGE, GenerateArgs, UsageError
from ..command_line import parse as parse_args
from . import timeline


class CommandError(Exception):
    """One file failed; the message says why."""


def run(argv: list[str]) -> int:
    """The command's handler: an exit status (0 done, 1 a file failed, 2 bad arguments)."""
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    if args is None:  # --help
        return EXIT_OK
    files = list(args.blend_files) or ([bpy.data.filepath] if bpy.data.filepath else [])
    if not files:
        print(f"{PROG} generate: error: no .blend file: open one (`blender -b shot.blend -c {PROG} generate`) or "
              "name the files after generate", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    try:
        for name in files:
            try:
                print(f"{PROG} generate: {name}: {_generate_one(name, args, open_file=bool(args.blend_files))}")
            except CommandError as err:
                failed += 1
                print(f"{PROG} generate: {name}: error: {err}", file=sys.stderr)
    finally:
        backend.free()  # the batch is over: the local backend's memory goes with it
    if len(files) > 1:
        print(f"{PROG} generate: {len(files) - failed} of {len(files)} files done")
    return EXIT_FAILED if failed else EXIT_OK


def _generate_one(name: str, args: GenerateArgs, open_file: bool) -> str:
    path = Path(name).expanduser().absolute()
    if open_file:
        if not path.is_file():
            raise CommandError("no such file")
        try:
            bpy.ops.wm.open_mainfile(filepath=str(path))
        except RuntimeError as err:
            raise CommandError(f"Blender cannot open it: {_clean(err)}") from None
    scene = bpy.data.scenes.get(args.scene) if args.scene else bpy.context.scene
    if scene is None:
        raise CommandError(f"no scene named {args.scene!r}; the scenes are: {', '.join(bpy.data.scenes.keys())}")
    props = scene.dance_any_beat
    _apply(props, args)
    with bpy.context.temp_override(scene=scene):
        if args.detect_beats:
            _call(bpy.ops.dance_any_beat.detect_beats, props, "Detect Beats")
        _call(bpy.ops.dance_any_beat.generate, props, "Generate")
    if props.job_state != "DONE":
        raise CommandError(props.error or f"Generate {props.job_state.lower()}")
    strip = timeline.strips(scene).get(props.result_strip)
    count = strip.frame_final_duration if strip is not None else 0
    done = f"strip {props.result_strip!r} on channel {strip.channel if strip else '?'}, {count} frames in " \
           f"{props.output_dir}"
    if not args.save:
        return done + " (not saved: add --save to keep the strip in the .blend)"
    try:
        bpy.ops.wm.save_mainfile(filepath=bpy.data.filepath or str(path))
    except RuntimeError as err:
        raise CommandError(f"the strip was added but saving failed: {_clean(err)}") from None
    return done + ", saved"


def _apply(props, args: GenerateArgs) -> None:
    """The command line's settings over the ones saved in the file's Dance panel."""
    if args.still is not None:
        if args.still.lower() in STILL_CHOICES:
            props.still_source = STILL_CHOICES[args.still.lower()]
        else:
            still = Path(args.still).expanduser().absolute()
            if not still.is_file():
                raise CommandError(f"--still {args.still}: no such image file (or give scene, sequencer or strip)")
            props.still_source, props.still_path = "FILE", str(still)
    if args.audio is not None:
        if args.audio.lower() == "timeline":
            props.audio_source = "TIMELINE"
        else:
            audio = Path(args.audio).expanduser().absolute()
            if not audio.is_file():
                raise CommandError(f"--audio {args.audio}: no such audio file (or give timeline)")
            props.audio_source, props.audio_path = "FILE", str(audio)
    if args.frame_range is not None:
        props.use_scene_range = False
        props.frame_start, props.frame_end = args.frame_range
    for option, prop in (("style", "style"), ("quality", "quality")):
        value = getattr(args, option)
        if value is not None:
            names = [item.identifier for item in props.bl_rna.properties[prop].enum_items]
            if value not in names:
                raise CommandError(f"--{option} {value}: unknown; choose one of {', '.join(names)}")
            setattr(props, prop, value)
    for option in ("seed", "steps", "channel"):
        value = getattr(args, option)
        if value is not None:
            setattr(props, option, value)


def _call(op, props, label: str) -> None:
    """Runs an operator of ours; its ERROR report (a RuntimeError from bpy.ops) or a greyed-out poll becomes a
    CommandError with the reason the panel would show."""
    props.error = ""
    if not op.poll():
        raise CommandError(f"{label} cannot run with these settings (check --still, --audio and --range)")
    try:
        result = op()
    except RuntimeError as err:
        raise CommandError(props.error or _clean(err)) from None
    if "FINISHED" not in result:
        raise CommandError(props.error or f"{label} was cancelled")


def _clean(err: Exception) -> str:
    text = str(err).strip()
    return text.removeprefix("Error: ").strip()
