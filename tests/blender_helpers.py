"""Helpers for the add-on's tests, which run in real Blender (`bpy` from PyPI), never with bpy mocked.

`import_bpy` points Blender's user folders at a temp dir first, so nothing lands in the home folder. The add-on
is loaded the way Blender loads an extension: from a user extensions repository whose `dance_any_beat` entry
is this repository (a symlink), enabled as `bl_ext.<repo>.dance_any_beat`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_REPO_MODULE = "dab_tests"
ADDON_MODULE = f"bl_ext.{TEST_REPO_MODULE}.dance_any_beat"

if str(REPO) not in sys.path:  # the bpy-free add-on modules import as `dance_any_beat_addon` in tests
    sys.path.insert(0, str(REPO))


def import_bpy():
    """bpy, with BLENDER_USER_RESOURCES set to a temp dir (set before the first import; kept for the process)."""
    if "bpy" not in sys.modules:
        os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dab_blender_user_"))
    import bpy

    return bpy


def blender_ext_script() -> Path:
    """Blender's own extension tool (what `blender --command extension build` runs), shipped inside bpy."""
    bpy_dir = Path(import_bpy_spec_origin()).parent
    found = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert found, f"blender_ext.py not found under {bpy_dir}"
    return found[-1]


def import_bpy_spec_origin() -> str:
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    assert spec is not None and spec.origin, "bpy is not installed"
    return spec.origin


def build_extension(out_zip: Path) -> Path:
    """Builds the extension zip from the repository with Blender's own builder (validates the manifest too)."""
    proc = subprocess.run([sys.executable, str(blender_ext_script()), "build", "--source-dir", str(REPO),
                           "--output-filepath", str(out_zip)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out_zip.exists(), f"build failed:\n{proc.stdout}\n{proc.stderr}"
    return out_zip


def enable_addon(bpy):
    """Loads the add-on from this repository as an extension (once per process); returns its module name."""
    import addon_utils

    if ADDON_MODULE in bpy.context.preferences.addons:
        return ADDON_MODULE
    repos = bpy.context.preferences.extensions.repos
    if not any(r.module == TEST_REPO_MODULE for r in repos):
        folder = Path(tempfile.mkdtemp(prefix="dab_ext_repo_"))
        (folder / "dance_any_beat").symlink_to(REPO, target_is_directory=True)
        repos.new(name="Dance Any Beat tests", module=TEST_REPO_MODULE, custom_directory=str(folder), source="USER")
    addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    assert ADDON_MODULE in bpy.context.preferences.addons, "the add-on did not enable"
    return ADDON_MODULE


def disable_addon(bpy) -> None:
    import addon_utils

    addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=_raise)


def _raise(err: BaseException) -> None:
    raise err


def png_bytes(color: tuple[int, int, int], size: int = 8) -> bytes:
    """A small solid PNG."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


class ScriptedClient:
    """A stand-in for `ServerClient` for tests of the job runner and the poll step before the real server runs
    them end to end: job states follow `script` (one state per status call, the last repeats), frames are PNGs.
    Not a bpy mock: it replaces the HTTP peer only."""

    def __init__(self, num_frames: int, script: list[str] | None = None):
        self.num_frames = num_frames
        self.script = list(script or ["queued", "running", "running", "done"])
        self.calls: list[str] = []
        self.cancelled = False
        self.submitted: list = []

    def submit(self, image, audio, params) -> str:
        self.calls.append("submit")
        self.submitted.append(params)
        return "job0123456789"

    def status(self, job_id):
        from dance_any_beat_addon.payload import JobStatus

        self.calls.append("status")
        if self.cancelled:
            return JobStatus(state="cancelled", stage="cancelled")
        state = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        progress = {"queued": 0.0, "running": 0.5, "done": 1.0}.get(state, 0.0)
        return JobStatus(state=state, progress=progress, stage=f"{state} stage", eta_s=1.0,
                         error="boom" if state == "failed" else None)

    def cancel(self, job_id) -> None:
        self.calls.append("cancel")
        self.cancelled = True

    def purge(self, job_id) -> None:
        self.calls.append("purge")

    def frames(self, job_id) -> list[str]:
        return [f"{n:06d}.png" for n in range(1, self.num_frames + 1)]

    def frame(self, job_id, n: int) -> bytes:
        return png_bytes((n * 10 % 256, 100, 200))


@dataclass
class PollTimes:
    """What each call of the add-on's poll step cost, as Blender's timer would call it."""

    wall: list[float] = field(default_factory=list)  # seconds per call, as the clock saw it
    cpu: list[float] = field(default_factory=list)  # seconds of the main thread's own CPU per call
    network_calls: int = 0  # HTTP connections opened on the main thread inside a poll step: must stay 0

    def assert_never_blocks(self, limit_s: float = 0.05) -> None:
        """The poll step's own work stays under `limit_s` per call and it never waits on the network.

        Its CPU time is what the step costs Blender's UI; its wall time on a shared 2-core machine also counts
        the time the scheduler gave to other processes, so the typical (median) wall time is checked, while
        any wait on the server would show up as a network call on the main thread.
        """
        assert self.network_calls == 0, f"{self.network_calls} HTTP connections made on the main thread"
        assert max(self.cpu) < limit_s, f"slowest poll step used {max(self.cpu) * 1000:.1f} ms of CPU"
        median = sorted(self.wall)[len(self.wall) // 2]
        assert median < limit_s, f"median poll step took {median * 1000:.1f} ms: {sorted(self.wall)[-5:]}"


def drive_polling(polling, scene, *, until=None, limit_s: float = 60.0, pause_s: float = 0.01) -> PollTimes:
    """Call the poll step by hand, as the timer would, until the scene's job is applied (or `until()` holds)."""
    import http.client
    import threading
    import time

    times = PollTimes()
    inside = threading.Event()
    connect = http.client.HTTPConnection.connect

    def watched_connect(self):
        if inside.is_set() and threading.current_thread() is threading.main_thread():
            times.network_calls += 1
        return connect(self)

    deadline = time.monotonic() + limit_s
    http.client.HTTPConnection.connect = watched_connect
    try:
        while polling.active_job(scene) is not None and not (until and until()):
            assert time.monotonic() < deadline, (
                f"stuck in {scene.dance_any_beat.job_state}: {scene.dance_any_beat.stage}"
            )
            wall, cpu = time.perf_counter(), time.thread_time()
            inside.set()
            try:
                polling.poll_step()
            finally:
                inside.clear()
            times.cpu.append(time.thread_time() - cpu)
            times.wall.append(time.perf_counter() - wall)
            time.sleep(pause_s)
    finally:
        http.client.HTTPConnection.connect = connect
    return times
