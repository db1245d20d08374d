"""The add-on's settings: one PropertyGroup on Scene (`scene.dance_any_beat`) and the AddonPreferences."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .. import ADDON_PACKAGE, backend_setup, presets

# Enum items are built once: Blender needs the lists kept alive while registered.
STYLE_ITEMS = presets.style_items()
QUALITY_ITEMS = presets.quality_items()

STILL_SOURCES = [
    ("SCENE", "Scene Render", "Render the scene at the current frame"),
    ("SEQUENCER", "Sequencer Preview", "The sequencer's output at the current frame"),
    ("STRIP", "Strip Under Playhead", "The image strip under the playhead (topmost)"),
    ("FILE", "Image File", "An image file"),
]
BACKGROUND_ITEMS = [  # keys of payload.BACKGROUND_CHOICES
    ("AUTO", "Auto", "Move only the person when the still shows one on a larger set; otherwise the whole image"),
    ("KEEP", "Keep Set", "Move only the person; the set stays as it is (stills without a person are refused)"),
    ("WHOLE", "Whole Image", "Move the whole image, set and all"),
]
AUDIO_SOURCES = [
    ("TIMELINE", "Timeline Mixdown", "All unmuted sound strips over the frame range, as you hear them"),
    ("STRIP", "Sound Strip", "One sound strip"),
    ("FILE", "Audio File", "An audio file, starting at the range's first frame"),
]
JOB_STATES = [
    ("IDLE", "Idle", "No job"),
    ("STARTING", "Starting", "Starting the backend or uploading"),
    ("QUEUED", "Queued", "Waiting for the device"),
    ("RUNNING", "Running", "Generating"),
    ("DOWNLOADING", "Downloading", "Fetching the frames"),
    ("DONE", "Done", "Finished; the strip was added"),
    ("FAILED", "Failed", "The job failed; see the error"),
    ("CANCELLED", "Cancelled", "Cancelled"),
]


class DANCE_ANY_BEAT_PG_settings(bpy.types.PropertyGroup):
    still_source: EnumProperty(name="Still", description="The image that will dance", items=STILL_SOURCES,
                               default="SEQUENCER")
    still_path: StringProperty(name="Image File", description="Image file to animate", subtype="FILE_PATH")
    audio_source: EnumProperty(name="Audio", description="The music to dance to", items=AUDIO_SOURCES,
                               default="TIMELINE")
    audio_strip: StringProperty(name="Sound Strip", description="Sound strip to dance to")
    audio_path: StringProperty(name="Audio File", description="Audio file to dance to", subtype="FILE_PATH")
    style: EnumProperty(name="Style", description="Dance style", items=STYLE_ITEMS, default=presets.DEFAULT_STYLE)
    quality: EnumProperty(name="Quality", description="Quality preset (speed against quality)",
                          items=QUALITY_ITEMS, default=presets.DEFAULT_QUALITY)
    background: EnumProperty(name="Background", description="What moves: the person, or the whole image",
                             items=BACKGROUND_ITEMS, default="AUTO")
    beat_sync: FloatProperty(name="Beat Sync", description="How firmly the dance's hits land on the beats: 1 = on "
                             "them, 0 = the model's own timing", default=1.0, min=0.0, max=1.0, subtype="FACTOR")
    seed: IntProperty(name="Seed", description="Random seed: the same inputs and seed give the same dance",
                      default=0, min=0)
    steps: IntProperty(name="Steps", description="Sampler steps per window; 0: the quality preset's", default=0,
                       min=0, max=1000)
    use_scene_range: BoolProperty(name="Scene Range", description="Use the scene's frame range", default=True)
    frame_start: IntProperty(name="Start", description="First frame of the dance", default=1, min=0)
    frame_end: IntProperty(name="End", description="Last frame of the dance", default=250, min=0)
    channel: IntProperty(name="Channel", description="Lowest channel for the result strip (the first free one at "
                         "or above it is used)", default=2, min=1, max=128)
    # Job state, written by the add-on only (shown in the panel)
    job_state: EnumProperty(name="Job State", items=JOB_STATES, default="IDLE")
    job_id: StringProperty(name="Job", description="Server job id")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    stage: StringProperty(name="Stage")
    eta_s: FloatProperty(name="ETA", description="Seconds left (-1: unknown)", default=-1.0)
    error: StringProperty(name="Error", description="Why the last action failed")
    output_dir: StringProperty(name="Output", description="Folder of the last result's frames", subtype="DIR_PATH")
    result_strip: StringProperty(name="Result Strip", description="Name of the last result strip")


class DANCE_ANY_BEAT_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend: EnumProperty(name="Backend", items=[
        ("LOCAL", "Local", "Start the backend on this computer"),
        ("REMOTE", "Remote", "Connect to a backend server (e.g. a GPU box)"),
    ], default="LOCAL")
    python_path: StringProperty(name="Python", description="Python interpreter with the dance-any-beat backend "
                                "installed", subtype="FILE_PATH")
    server_url: StringProperty(name="URL", description="Server URL, like http://gpu-box:8765")
    token: StringProperty(name="Token", description="The server's bearer token", subtype="PASSWORD")
    device: EnumProperty(name="Device", items=[
        ("auto", "Auto", "A GPU when there is one, else the CPU"),
        ("cuda", "CUDA", "An NVIDIA GPU"),
        ("cpu", "CPU", "The CPU"),
    ], default="auto")
    checkpoint_path: StringProperty(name="Checkpoint", description="Model checkpoint folder (empty: the bundled "
                                    "starter model)", subtype="DIR_PATH")
    clap_path: StringProperty(name="CLAP Weights", description="LAION-CLAP checkpoint file (630k-audioset-best.pt), "
                              "for models with a CLAP music part (serve --clap-weights; empty: the path in the "
                              "checkpoint)", subtype="FILE_PATH")
    wav2clip_path: StringProperty(name="Wav2CLIP Weights", description="Wav2CLIP checkpoint file (Wav2CLIP.pt), "
                                  "for models with a Wav2CLIP music part (serve --wav2clip-weights; empty: the path "
                                  "in the checkpoint)", subtype="FILE_PATH")
    # Shown in the preferences, written by the add-on
    connection_status: StringProperty(name="Connection", description="What the last Test Connection found")
    setup_status: StringProperty(name="Setup", description="What the last Set up Backend did")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend", expand=True)
        if self.backend == "LOCAL":
            layout.prop(self, "python_path")
            layout.prop(self, "device")
            layout.prop(self, "checkpoint_path")
            col = layout.column()
            col.prop(self, "clap_path")  # passed as `dance-any-beat serve --clap-weights`
            col.prop(self, "wav2clip_path")  # and --wav2clip-weights
            col.label(text="Only for models with these music parts; empty: the checkpoint's paths or "
                      "<cache>/weights/", icon="INFO")
        else:
            layout.prop(self, "server_url")
            layout.prop(self, "token")
            if not bpy.app.online_access:
                layout.label(text="Online access is off: only a server on this computer can be reached",
                             icon="ERROR")
        row = layout.row(align=True)
        row.operator("dance_any_beat.test_connection", icon="LINKED")
        if self.backend == "LOCAL":
            row.operator("dance_any_beat.setup_backend", icon="IMPORT")
        setup = backend_setup.current()
        snap = setup.snapshot() if setup is not None else None
        if snap is not None and not snap.done:
            if hasattr(layout, "progress"):
                layout.progress(factor=snap.progress, type="BAR", text=snap.stage)
            else:
                layout.label(text=f"{snap.stage} ({snap.progress:.0%})")
            layout.label(text=f"Log: {snap.log}")
        for text in (self.connection_status, self.setup_status):
            for i, line in enumerate(text.splitlines()[:6]):
                layout.label(text=line, icon=("INFO" if i == 0 else "BLANK1"))


def preferences(context=None):
    """The add-on's preferences, or None when registered outside the extension system (then defaults apply)."""
    addon = (context or bpy.context).preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


classes = (DANCE_ANY_BEAT_PG_settings, DANCE_ANY_BEAT_AP_preferences)


def register_pointer() -> None:
    bpy.types.Scene.dance_any_beat = PointerProperty(type=DANCE_ANY_BEAT_PG_settings)


def unregister_pointer() -> None:
    del bpy.types.Scene.dance_any_beat
