"""Everything the add-on does to the timeline: beat markers, audio mixdown, stills, the result image strip.

The one place that knows Blender 5.0 renamed `sequence_editor.sequences` to `strips` is `strips()` /
`strips_all()` below.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .. import timebase

# -------------------------------------------------------------------------------------------- version shim


def strips(scene: bpy.types.Scene):
    """The top-level strip collection (with new_image, new_sound, remove): `.strips` in 5.0, `.sequences` before."""
    ed = scene.sequence_editor or scene.sequence_editor_create()
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def strips_all(scene: bpy.types.Scene):
    """Every strip, inside meta strips too (read-only view)."""
    ed = scene.sequence_editor
    if ed is None:
        return []
    return ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all


# ----------------------------------------------------------------------------------------------- time


def fps(scene: bpy.types.Scene) -> float:
    return timebase.scene_fps(scene.render.fps, scene.render.fps_base)


def frame_range(scene: bpy.types.Scene) -> tuple[int, int]:
    """The inclusive frame range the add-on works on: the panel's custom range or the scene's."""
    props = scene.dance_any_beat
    if props.use_scene_range:
        return scene.frame_start, scene.frame_end
    return props.frame_start, props.frame_end


# -------------------------------------------------------------------------------------------- markers


def beat_markers(scene: bpy.types.Scene, start: int | None = None, end: int | None = None) -> list:
    """The add-on's own markers (optionally inside [start, end]), by frame."""
    found = [m for m in scene.timeline_markers if timebase.is_beat_marker(m.name)
             and (start is None or m.frame >= start) and (end is None or m.frame <= end)]
    return sorted(found, key=lambda m: m.frame)


def clear_beat_markers(scene: bpy.types.Scene, start: int | None = None, end: int | None = None) -> int:
    """Removes the add-on's markers (in [start, end] when given); never anyone else's. Returns how many."""
    ours = beat_markers(scene, start, end)
    for marker in ours:
        scene.timeline_markers.remove(marker)
    return len(ours)


def add_beat_marker(scene: bpy.types.Scene, frame: int, downbeat: bool = False):
    """A beat marker at `frame`, unless one of ours is already there (then None)."""
    if any(m.frame == frame for m in beat_markers(scene, frame, frame)):
        return None
    name = timebase.DOWNBEAT_MARKER if downbeat else timebase.BEAT_MARKER
    return scene.timeline_markers.new(name, frame=frame)


def place_beats(scene: bpy.types.Scene, beats: list[float], downbeats: list[float], start: int, end: int,
                offset: float = 0.0) -> int:
    """Replaces our markers in [start, end] with the given beats (seconds on the audio clock). Returns count."""
    clear_beat_markers(scene, start, end)
    frames = timebase.beat_frames(beats, downbeats, fps(scene), start, end, offset)
    for frame, down in frames.items():
        add_beat_marker(scene, frame, down)
    return len(frames)


def marker_beat_times(scene: bpy.types.Scene, start: int, end: int, offset: float = 0.0) -> list[float]:
    """Our markers in [start, end] as beat times in seconds on the audio clock: the rhythm Generate sends."""
    rate = fps(scene)
    return [round(timebase.frame_to_seconds(m.frame, rate, start, offset), 6) for m in beat_markers(scene, start, end)]


# -------------------------------------------------------------------------------------------------- audio


def mixdown(scene: bpy.types.Scene, start: int, end: int, filepath: Path) -> Path:
    """The timeline's audio over [start, end] as the artist hears it (unmuted sound strips), as a WAV."""
    saved = scene.frame_start, scene.frame_end
    scene.frame_start, scene.frame_end = start, end
    try:
        with bpy.context.temp_override(scene=scene):
            result = bpy.ops.sound.mixdown(filepath=str(filepath), check_existing=False, container="WAV",
                                           codec="PCM", format="S16")
    finally:
        scene.frame_start, scene.frame_end = saved
    if "FINISHED" not in result or not Path(filepath).exists():
        raise RuntimeError(f"the audio mixdown of frames {start}-{end} failed")
    return Path(filepath)


def sound_strips(scene: bpy.types.Scene) -> list:
    return [s for s in strips_all(scene) if s.type == "SOUND"]


def sound_strip_audio(scene: bpy.types.Scene, strip, start: int) -> tuple[Path, float]:
    """A sound strip's file and the file time (seconds) under frame `start`."""
    path = Path(bpy.path.abspath(strip.sound.filepath, library=strip.sound.library))
    return path, (start - strip.frame_start) / fps(scene)


# ------------------------------------------------------------------------------------------------- stills


def image_strip_under_playhead(scene: bpy.types.Scene):
    """The topmost unmuted image strip at the current frame, or None."""
    frame = scene.frame_current
    hits = [s for s in strips_all(scene) if s.type == "IMAGE" and not s.mute
            and s.frame_final_start <= frame < s.frame_final_end]
    return max(hits, key=lambda s: s.channel, default=None)


def image_strip_file(strip, frame: int) -> Path:
    """The image file an image strip shows at `frame`."""
    index = min(max(frame - int(strip.frame_start), 0), len(strip.elements) - 1)
    return Path(bpy.path.abspath(strip.directory)) / strip.elements[index].filename


def render_still(scene: bpy.types.Scene, filepath: Path, use_sequencer: bool) -> Path:
    """Renders the current frame to a PNG: the 3D scene, or the sequencer's output (the preview)."""
    render = scene.render
    saved = (render.filepath, render.use_sequencer, render.image_settings.file_format)
    render.filepath, render.use_sequencer, render.image_settings.file_format = str(filepath), use_sequencer, "PNG"
    try:
        with bpy.context.temp_override(scene=scene):
            bpy.ops.render.render(write_still=True, scene=scene.name)
    finally:
        render.filepath, render.use_sequencer, render.image_settings.file_format = saved
    if not Path(filepath).exists():
        raise RuntimeError("the still render wrote no image")
    return Path(filepath)


# ------------------------------------------------------------------------------------------- result strip


def free_channel(scene: bpy.types.Scene, first: int, start: int, end: int) -> int:
    """The lowest channel >= `first` with no strip overlapping frames [start, end]."""
    busy = {s.channel for s in strips_all(scene) if s.frame_final_start <= end and s.frame_final_end > start}
    channel = max(first, 1)
    while channel in busy:
        channel += 1
    if channel > 128:
        raise RuntimeError("no free channel for the result strip")
    return channel


def add_image_strip(scene: bpy.types.Scene, frames: list[Path], start: int, end: int, first_channel: int,
                    name: str):
    """An image strip of `frames` from `start`, exactly end - start + 1 frames long, on a free channel.

    Extra frames are left out; missing ones repeat the last (the caller warns). Data API only (no operators),
    so it works in background mode and from a timer.
    """
    count = end - start + 1
    if not frames:
        raise RuntimeError("no frames to add")
    names = [f.name for f in frames[:count]]
    names += [names[-1]] * (count - len(names))
    channel = free_channel(scene, first_channel, start, end)
    strip = strips(scene).new_image(name=name, filepath=str(frames[0]), channel=channel, frame_start=start,
                                    fit_method="FIT")
    strip.directory = str(frames[0].parent) + "/"
    for filename in names[1:]:
        strip.elements.append(filename)
    return strip
