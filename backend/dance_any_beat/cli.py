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


# ---------------------------------------------------------------------------------------------------- train
TRAIN_EPILOG = """\
examples:
  dance-any-beat make-dataset --out datasets/procedural --num-clips 2000 --split train
  dance-any-beat train lfae --config configs/lfae_starter.toml
  dance-any-beat train diffusion --config configs/diffusion_starter.toml --set lfae_checkpoint=runs/lfae/checkpoint
  dance-any-beat train lfae --config configs/lfae_starter.toml --set batch_size=16 --set model.num_regions=8

several GPUs or processes (DDP; gloo on CPU, nccl on GPU; batch_size is per process):
  torchrun --standalone --nproc_per_node 4 -m dance_any_beat.cli train lfae --config configs/lfae_starter.toml

resuming: run the same command again. A run folder (`out`) holding train_state.pt continues from its last saved
step (every checkpoint_every steps, and at the end); raise `steps` to train longer. A run started with other
model settings is refused: use a new `out` folder for a new model.

outputs in OUT: checkpoint/ (lfae: the stage-1 checkpoint that stage 2 reads; diffusion: the full DabFusion
checkpoint the pipeline loads), log.csv (step, losses, lr, steps/s), train_state.pt (for resuming).
"""


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from dance_any_beat.train.common import config_to_dict, load_config

    if args.stage == "lfae":
        from dance_any_beat.train.lfae import LFAETrainConfig as config_class
        from dance_any_beat.train.lfae import train_lfae as train
    else:
        from dance_any_beat.train.diffusion import DiffusionTrainConfig as config_class
        from dance_any_beat.train.diffusion import train_diffusion as train

    config = load_config(config_class, args.config, args.overrides)
    if args.print_config:
        print(json.dumps(config_to_dict(config), indent=2))
        return 0
    try:
        run_dir = train(config)
    except FloatingPointError as err:
        raise CliError(str(err)) from None
    if os.environ.get("RANK", "0") == "0":
        print(f"{args.stage}: step {config.steps} done; checkpoint in {run_dir / 'checkpoint'}, log in "
              f"{run_dir / 'log.csv'}")
    return 0


# ------------------------------------------------------------------------------------------------- generate
GENERATE_EPILOG = """\
examples:
  dance-any-beat generate --image still.png --audio song.ogg --out out/dance
  dance-any-beat generate --image still.png --audio song.ogg --out out/preview --preset draft --seconds 8
  dance-any-beat generate --image render.png --audio timeline.wav --out out/shot010 --start 12.5 --seconds 4 \\
      --fps 24 --beats beats.txt --style house --resolution full --seed 7
  dance-any-beat generate --image still.png --audio song.ogg --out out/dance --json | tail -n 1

beats file (--beats): one beat time per line, in seconds from the start of the audio file (the clock of
--start and of `dance-any-beat beats`); '#' starts a comment. Without it the beats of the range are tracked.

outputs in OUT: frames/000001.png ... (exactly round(seconds * fps) frames, any --fps), dance.mp4 (the frames
with the music of the range), beats.json (tempo, beats and downbeats in seconds from --start, and whether they
were tracked or given), generate.json (the settings used). OUT must be new, empty, or an earlier generate output.

--resolution model: the model's own view (the still letterboxed into its square, cropped back out), fast.
--resolution full: frames at the still's own size (the still itself warped by the motion; the model paints only
what the still does not show).

a dancer on a set: when the still shows a person (found by mediapipe's pose model) and more than just them, only
the person moves and the set stays as it is (--keep-background, the default then): the model sees the part of
the still around the dancer, the dancer is cut out and moved at the still's own size, and the set behind them is
filled in. --no-keep-background moves the whole picture. With several people the largest dances (--person N
picks another); a dancer cut off by the frame edge is warned about; a still with nobody in it refuses
--keep-background.
"""


def _preset_help() -> str:
    try:
        from dance_any_beat.presets import DEFAULT_PRESET, load_quality_presets

        presets = load_quality_presets()
    except (OSError, ValueError):
        return "quality preset from presets/quality.toml"
    names = "; ".join(f"{p.name}: {p.steps} steps, {p.resolution} resolution" for p in presets.values())
    return f"quality preset ({DEFAULT_PRESET} when not given): {names}. Flags you give override it"


def _checkpoint(path: str | None) -> Path:
    """The checkpoint folder to load: the given one, or the bundled starter model (with how to get it if missing)."""
    from dance_any_beat.pipeline import STARTER_CHECKPOINT, STARTER_TRAINING

    if path is None:
        if not (STARTER_CHECKPOINT / "model.safetensors").is_file():
            raise CliError(
                f"the starter model is not trained yet: {STARTER_CHECKPOINT} holds no checkpoint. Train it "
                f"({STARTER_TRAINING}), or pass --checkpoint DIR with a trained model's checkpoint folder"
            )
        return STARTER_CHECKPOINT
    checkpoint = Path(path)
    if not checkpoint.exists():
        raise CliError(
            f"checkpoint folder {checkpoint} does not exist; give the checkpoint folder of a `dance-any-beat train "
            "diffusion` run (RUN_DIR/checkpoint), or leave --checkpoint out for the starter model"
        )
    return checkpoint


def _music_weights(args: argparse.Namespace) -> dict[str, str]:
    """--clap-weights / --wav2clip-weights as DabFusion.from_checkpoint's music_weights (the ones given)."""
    given = {"clap": args.clap_weights, "wav2clip": args.wav2clip_weights}
    return {part: path for part, path in given.items() if path}


def _add_music_weights(parser: argparse.ArgumentParser) -> None:
    for part, file_name in (("clap", "630k-audioset-best.pt"), ("wav2clip", "Wav2CLIP.pt")):
        parser.add_argument(f"--{part}-weights", default=None, metavar="FILE",
                            help=f"this machine's {file_name}, for a model with the '{part}' music part (default: "
                            "the path recorded in the checkpoint; ignored by models without that part)")


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dance_any_beat.music.beats import read_beat_times
    from dance_any_beat.pipeline import GenerateParams, generate

    checkpoint = _checkpoint(args.checkpoint)
    names = ("start", "seconds", "fps", "seed", "style", "steps", "guidance", "resolution", "preset", "device",
             "keep_background", "person", "beat_sync")
    params = GenerateParams.from_dict({n: getattr(args, n) for n in names if getattr(args, n) is not None})
    beat_times = None
    if args.beats is not None:
        beat_times = read_beat_times(args.beats)
        if len(beat_times) == 0:
            raise CliError(f"{args.beats} holds no beat times; write one time in seconds per line, or leave --beats "
                           "out to track the beats")
    bar = tqdm(total=1000, desc="generate", bar_format="{desc:<24}{percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction: float, stage: str) -> None:
        bar.set_description_str(stage[:24], refresh=False)
        bar.update(round(fraction * 1000) - bar.n)

    try:
        result = generate(checkpoint, args.image, args.audio, args.out, params, beat_times=beat_times,
                          progress=progress, music_weights=_music_weights(args))
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    width, height = result.size
    if result.dancer_box is not None:
        x, y, w, h = result.dancer_box
        print(f"the dancer at x {x}, y {y} ({w}x{h} px) moves; the rest of the still stays as it is")
    took = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"{result.frames} frames at {result.fps:g} fps, {width}x{height} -> {result.frames_dir}/000001.png ...")
    print(f"video with music -> {result.video}")
    print(f"{len(result.beat_times)} beats ({'given' if beat_times is not None else 'tracked'}) -> "
          f"{result.beats_json}")
    print(f"took {sum(result.seconds.values()):.1f} s ({took})")
    return 0


def _add_generate(commands: argparse._SubParsersAction) -> None:
    styles = ("auto", *STYLE_NAMES)
    gen = commands.add_parser(
        "generate",
        help="make a still image dance to music: PNG frames, an MP4 with the music, and the beats",
        description="Make the person in a still image dance to a piece of music with a DabFusion model (the "
        "bundled starter model unless --checkpoint says otherwise). The dance follows the music's beats: tracked "
        "from the audio, or the ones you give with --beats. Runs on a CPU; a GPU is used when there is one.",
        epilog=GENERATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("--image", required=True, help="the still: PNG or JPEG, any size and aspect")
    gen.add_argument("--audio", required=True, help="the music: wav, flac, ogg or mp3")
    gen.add_argument("--out", required=True, help="output folder (new, empty, or an earlier generate output)")
    gen.add_argument("--beats", default=None, metavar="BEATS.TXT",
                     help="beat times to dance to (see below); default: track the beats of the music")
    gen.add_argument("--style", choices=styles, default=None, metavar="NAME",
                     help=f"dance style (auto: the music decides): {', '.join(styles)}")
    gen.add_argument("--start", type=_non_negative_float, default=None, metavar="S",
                     help="seconds into the audio where the dance begins (0)")
    gen.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                     help="length of the dance in seconds (to the end of the audio)")
    gen.add_argument("--fps", type=_positive_float, default=None, help="frames per second of the output (24)")
    gen.add_argument("--seed", type=int, default=None, help="same seed, same dance (0)")
    gen.add_argument("--steps", type=int, default=None,
                     help="sampler steps per window (from the preset; standard: 25)")
    gen.add_argument("--guidance", type=float, default=None, metavar="G",
                     help="how strongly the dance follows the music; 1 = no guidance (from the preset; standard: 2.5)")
    gen.add_argument("--resolution", choices=("model", "full"), default=None,
                     help="model: the model's own view; full: the still's own size (from the preset)")
    gen.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                     help="auto: a CUDA GPU when there is one (auto)")
    keep = gen.add_mutually_exclusive_group()
    keep.add_argument("--keep-background", dest="keep_background", action="store_true", default=None,
                      help="move only the person; the set behind them stays still (default when a person is found "
                      "in a still larger than them; refuses when none is found)")
    keep.add_argument("--no-keep-background", dest="keep_background", action="store_false",
                      help="move the whole still (the model sees all of it)")
    gen.add_argument("--person", type=int, default=None, metavar="N",
                     help="which person dances when the still shows several: 1 = the largest (1)")
    gen.add_argument("--beat-sync", type=float, default=None, metavar="S",
                     help="retime the dance so its hits land on the beats: 1 = on them, 0 = the model's own timing, "
                     "between = part way (1)")
    gen.add_argument("--preset", default=None, metavar="NAME", help=_preset_help())
    gen.add_argument("--checkpoint", default=None, metavar="DIR",
                     help="model checkpoint folder (default: the bundled starter model, checkpoints/starter)")
    gen.add_argument("--json", action="store_true",
                     help="print one JSON object last: frames, fps, size, paths and seconds per stage")
    _add_music_weights(gen)
    gen.set_defaults(func=cmd_generate)


# --------------------------------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from dance_any_beat.checkpoint import read_config
    from dance_any_beat.models.dabfusion import DabFusion

    source = Path(args.checkpoint)
    out = Path(args.out)
    if out.resolve() == source.resolve():
        raise CliError("--out is the checkpoint itself; give another folder")
    if (out / "model.safetensors").exists() and not args.overwrite:
        raise CliError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
    model = DabFusion.from_checkpoint(source)
    training = read_config(source).get("training", {})
    if args.lfae:
        from dance_any_beat.models.dabfusion import load_lfae_checkpoint

        model.take_decoder(load_lfae_checkpoint(args.lfae), args.lfae)
        decoder_training = read_config(args.lfae).get("training", {})
        training = {**training, "lfae_decoder": {"checkpoint": args.lfae, **decoder_training}}
    model.save(out, dtype=torch.float16 if args.fp16 else None, extra=training)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB{', fp16' if args.fp16 else ''}; training step {training.get('step')})")
    return 0


def _add_export(commands: argparse._SubParsersAction) -> None:
    ex = commands.add_parser(
        "export",
        help="copy a trained stage-2 checkpoint into a folder to ship (fp16 halves it)",
        description="Load a full DabFusion checkpoint (a `train diffusion` run's RUN_DIR/checkpoint, the averaged "
        "weights) and write it to OUT, in fp16 with --fp16; the training record goes along. This is how "
        "checkpoints/starter is made.",
        epilog="example: dance-any-beat export checkpoints/starter/training/diffusion/checkpoint checkpoints/starter "
        "--fp16 --overwrite",
    )
    ex.add_argument("checkpoint", help="checkpoint folder (kind dabfusion) to read")
    ex.add_argument("out", help="folder to write model.safetensors and config.json into")
    ex.add_argument("--fp16", action="store_true", help="store the weights in float16 (generation upcasts)")
    ex.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in OUT")
    ex.add_argument(
        "--lfae", metavar="LFAE_CHECKPOINT", default=None,
        help="ship this stage-1 checkpoint's decoder instead (a `train lfae` run with trainable = \"decoder\" "
        "started from the model's own stage 1; any other difference is refused)",
    )
    ex.set_defaults(func=cmd_export)


# ------------------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dance_any_beat.evaluate import evaluate

    checkpoint = _checkpoint(args.checkpoint)
    bar = tqdm(total=args.clips, unit="clip", desc="evaluate")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        overrides = {k: getattr(args, k) for k in ("steps", "sampler", "guidance", "beat_sync")
                     if getattr(args, k) is not None}
        report = evaluate(checkpoint, args.data, clips=args.clips, preset=args.preset, seed=args.seed,
                          drift_seconds=args.drift_seconds, drift_dances=args.drift_dances,
                          drift_start=args.drift_start, device=args.device,
                          progress=progress, overrides=overrides)  # fmt: skip
    finally:
        bar.close()
    print(json.dumps(report.to_dict()) if args.json else report.table())
    return 0


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="score a checkpoint on held-out procedural clips (SSIM/PSNR, beat alignment, AV-Align, music swap)",
        description="Score a DabFusion checkpoint on procedural clips it never saw in training: LFAE "
        "reconstruction SSIM/PSNR; beat alignment (BAS) of dances generated from each clip's first frame and "
        "music, next to the real video's; AV-Align; the music-swap test (the same still danced to another "
        "clip's music should match the clip's own beats far worse); motion size and frame-0 fidelity. Prints a "
        "table with the targets of the starter model.",
        epilog="example:\n  dance-any-beat make-dataset --out datasets/procedural --num-clips 50 --split test\n"
        "  dance-any-beat evaluate --checkpoint checkpoints/starter --data datasets/procedural/test --clips 8\n"
        "  dance-any-beat evaluate --data datasets/procedural/test --preset draft --guidance 4  # a guidance sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint folder (the starter model)")
    ev.add_argument("--data", required=True, metavar="DIR", help="a procedural split folder, e.g. DIR/test")
    ev.add_argument("--clips", type=int, default=8, metavar="N", help="clips to score, in seed order (8)")
    ev.add_argument("--preset", default="standard", metavar="NAME", help="quality preset for generating (standard)")
    ev.add_argument("--steps", type=int, default=None, help="sampler steps per window (the preset's)")
    ev.add_argument("--sampler", default=None, help="ddim, dpmpp_2m or ddpm (the preset's)")
    ev.add_argument("--guidance", type=float, default=None, metavar="G", help="music guidance (the preset's)")
    ev.add_argument("--beat-sync", type=float, default=None, metavar="S",
                    help="beat sync strength of the generated dances (1; 0 = the network's own timing)")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    ev.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(auto)")
    ev.add_argument("--drift-seconds", type=float, default=16.0, metavar="S",
                    help="length of the long dance whose last 4 s are compared with its first 4 s (16; 0 = skip)")
    ev.add_argument("--drift-dances", type=int, default=16, metavar="N",
                    help="long dances (seeds) the drift scores are averaged over (16: a 4 s segment's BAS is noisy)")
    ev.add_argument("--drift-start", type=float, default=0.0, metavar="S",
                    help="start the long dances S seconds into their music, as a shot cut from a song does, "
                    "instead of at its first sample (0)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ev.set_defaults(func=cmd_evaluate)


# ---------------------------------------------------------------------------------------------------- serve
SERVE_EPILOG = """\
examples:
  dance-any-beat serve                                  # 127.0.0.1, a free port, the starter model
  dance-any-beat serve --port 8765 --token-file ~/.dab-token --checkpoint runs/diffusion/checkpoint
  DANCE_ANY_BEAT_TOKEN=... dance-any-beat serve --host 0.0.0.0 --port 8765 --device cuda   # a shared GPU box

ready line: once it takes jobs, the server prints one JSON line on stdout:
  {"url": "http://127.0.0.1:PORT", "pid": ..., "token_file": "...", "jobs_dir": "...", "version": "..."}
token: every route but GET /health needs 'Authorization: Bearer TOKEN'. The token is never printed; it comes from
$DANCE_ANY_BEAT_TOKEN (then token_file is null), else from --token-file (read when the file holds one, otherwise
generated and written there, mode 0600), else it is generated into JOBS_DIR/token. A host that is not a loopback
address needs $DANCE_ANY_BEAT_TOKEN or --token-file.
"""


def cmd_serve(args: argparse.Namespace) -> int:
    from dance_any_beat.server import ServerSettings, serve
    from dance_any_beat.server.inputs import MB, Limits

    limits = Limits(max_image_bytes=int(args.max_image_mb * MB), max_audio_bytes=int(args.max_audio_mb * MB),
                    max_audio_seconds=args.max_audio_minutes * 60.0)  # fmt: skip
    settings = ServerSettings(host=args.host, port=args.port, token_file=args.token_file, device=args.device,
                              checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                              concurrency=args.concurrency, threads=args.threads, limits=limits,
                              music_weights=_music_weights(args),
                              **({"jobs_dir": Path(args.jobs_dir)} if args.jobs_dir else {}))  # fmt: skip
    try:
        return serve(settings)
    except OSError as err:
        raise CliError(str(err)) from None


def _add_serve(commands: argparse._SubParsersAction) -> None:
    srv = commands.add_parser(
        "serve",
        help="the HTTP job server the Blender add-on talks to (local, or a shared GPU box)",
        description="Serve the generate pipeline over HTTP: jobs are queued and run one at a time on the device "
        "with the model loaded once; clients poll progress, cancel, and fetch frames, the video and the beats.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    srv.add_argument("--port", type=int, default=0, help="port; 0 = a free one, named in the ready line (0)")
    srv.add_argument("--token-file", default=None, metavar="FILE", help="where the bearer token is read or written")
    srv.add_argument("--jobs-dir", default=None, metavar="DIR",
                     help="job folders (inputs, state, outputs); default: ~/.cache/dance_any_beat/jobs")
    srv.add_argument("--checkpoint", default=None, metavar="DIR",
                     help="model checkpoint folder (default: the bundled starter model)")
    srv.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(auto)")
    srv.add_argument("--concurrency", type=int, default=1, metavar="N", help="jobs running at once (1)")
    srv.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (torch's default)")
    srv.add_argument("--max-image-mb", type=_positive_float, default=50.0, metavar="MB",
                     help="largest still upload (50; stills are also at most 8192 px a side)")
    srv.add_argument("--max-audio-mb", type=_positive_float, default=200.0, metavar="MB",
                     help="largest audio upload (200)")
    srv.add_argument("--max-audio-minutes", type=_positive_float, default=15.0, metavar="MIN",
                     help="longest audio file (15)")
    _add_music_weights(srv)
    srv.set_defaults(func=cmd_serve)


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
        help="the procedural dancer (the model's training data) dancing on the beats of a track",
        description="Track the beats of a track (the bundled example by default), render a procedural dancer "
        "whose moves land on those beats, and write OUT/frames/000001.png ..., OUT/dance.mp4 (with the music) "
        "and OUT/beats.json: the beat tracker and the data the model learns from (`make demo` runs `generate`).",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (out/demo)")
    demo.add_argument("--audio", default=None, help="a track of your own (default: examples/example_track.ogg)")
    demo.add_argument("--style", choices=STYLE_NAMES, default="lock", help="dance style (lock)")
    demo.add_argument("--seed", type=int, default=0, help="picks the dancer's look and moves (0)")
    demo.add_argument("--json", action="store_true", help="print one JSON object with the results")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)

    train = commands.add_parser(
        "train",
        help="train DabFusion: stage 1 (lfae, the flow auto-encoder) then stage 2 (diffusion, music -> motion)",
        description="Train one stage of DabFusion from a TOML config (see configs/). Stage 1 (lfae) learns to "
        "rebuild a frame from another frame of the same video through a latent flow; stage 2 (diffusion) learns "
        "to generate those flows from a still and music, with the stage-1 model frozen. Any setting can be "
        "overridden with --set KEY=VALUE (tables with dots: model.base_channels=32).",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("stage", choices=("lfae", "diffusion"), help="which stage to train")
    train.add_argument("--config", default=None, help="TOML file of settings (default: the built-in defaults)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting, after the file (repeatable)")
    train.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")
    train.set_defaults(func=cmd_train)
    _add_export(commands)
    _add_generate(commands)
    _add_evaluate(commands)
    _add_serve(commands)
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
    except ImportError as err:  # a part of the install is missing (e.g. mediapipe for --keep-background)
        print(f"dance-any-beat {args.command}: error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"dance-any-beat {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
