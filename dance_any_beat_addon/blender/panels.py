"""The sidebar panel (tab "Dance") in the Video Sequencer and the 3D viewport."""

from __future__ import annotations

import bpy

from . import polling, timeline


def draw_panel(layout, context) -> None:
    scene = context.scene
    props = scene.dance_any_beat
    layout.use_property_split = True
    layout.use_property_decorate = False

    col = layout.column()
    col.prop(props, "still_source")
    if props.still_source == "FILE":
        col.prop(props, "still_path")
    col.prop(props, "audio_source")
    if props.audio_source == "STRIP":
        ed = scene.sequence_editor
        if ed is not None:
            col.prop_search(props, "audio_strip", ed, "strips_all" if hasattr(ed, "strips_all") else "sequences_all")
    elif props.audio_source == "FILE":
        col.prop(props, "audio_path")

    col = layout.column()
    col.prop(props, "style")
    col.prop(props, "quality")
    col.prop(props, "background")
    col.prop(props, "beat_sync", slider=True)
    col.prop(props, "steps")
    col.prop(props, "seed")
    col.prop(props, "use_scene_range")
    sub = col.column(align=True)
    sub.enabled = not props.use_scene_range
    sub.prop(props, "frame_start")
    sub.prop(props, "frame_end")
    col.prop(props, "channel")

    start, end = timeline.frame_range(scene)
    count = len(timeline.beat_markers(scene, start, end))
    box = layout.box()
    box.label(text=f"{count} beat markers in {start}-{end}" if count else "No beat markers: beats will be detected",
              icon="MARKER_HLT")
    row = box.row(align=True)
    row.operator("dance_any_beat.detect_beats", icon="SOUND")
    row.operator("dance_any_beat.add_beat_marker", text="Add", icon="ADD")
    row.operator("dance_any_beat.clear_beat_markers", text="Clear", icon="X")

    job = polling.active_job(scene)
    col = layout.column(align=True)
    if job is not None:
        eta = f", {props.eta_s:.0f} s left" if props.eta_s >= 0 else ""
        if hasattr(col, "progress"):
            col.progress(factor=props.progress, type="BAR", text=f"{props.stage or props.job_state.title()}{eta}")
        else:
            col.label(text=f"{props.stage} {props.progress:.0%}{eta}")
        col.operator("dance_any_beat.cancel", icon="CANCEL")
    else:
        col.scale_y = 1.5
        col.operator("dance_any_beat.generate", icon="PLAY")
    if props.error:
        box = layout.box()
        for i, line in enumerate(props.error.splitlines()[:6]):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")

    row = layout.row(align=True)
    row.operator("dance_any_beat.free_backend", icon="TRASH")
    row.operator("dance_any_beat.open_output", text="", icon="FILE_FOLDER")


class DANCE_ANY_BEAT_PT_sequencer(bpy.types.Panel):
    bl_label = "Dance Any Beat"
    bl_idname = "DANCE_ANY_BEAT_PT_sequencer"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Dance"

    def draw(self, context):
        draw_panel(self.layout, context)


class DANCE_ANY_BEAT_PT_view3d(bpy.types.Panel):
    bl_label = "Dance Any Beat"
    bl_idname = "DANCE_ANY_BEAT_PT_view3d"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"

    def draw(self, context):
        draw_panel(self.layout, context)


classes = (DANCE_ANY_BEAT_PT_sequencer, DANCE_ANY_BEAT_PT_view3d)
