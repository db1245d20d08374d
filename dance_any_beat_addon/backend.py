"""Which server the add-on talks to, and the one function Detect Beats goes through; bpy-free.

The operators copy the preferences into a `BackendSettings` on the main thread; everything here may then run on
a worker thread. Local mode keeps one `LocalServer` per Blender session (started on first use, stopped by
"Free Backend Memory"); remote mode is a URL and a token.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from .client import BackendError, ServerClient
from .local_server import LocalServer
from .payload import BeatInfo

BEATS_CLI_TIMEOUT = 300.0  # seconds


@dataclass(frozen=True)
class BackendSettings:
    mode: str  # "LOCAL" or "REMOTE"
    python: str = ""  # local: the backend's Python interpreter
    url: str = ""  # remote: server URL
    token: str = ""  # remote: bearer token
    device: str = "auto"
    checkpoint: str = ""
    clap: str = ""
    wav2clip: str = ""
    state_dir: str = ""  # local: where the token file and the jobs folder live

    def env(self) -> dict[str, str]:
        """Weight paths for the backend process (it reads them from the environment)."""
        env = {}
        if self.clap:
            env["DANCE_ANY_BEAT_CLAP_WEIGHTS"] = self.clap
        if self.wav2clip:
            env["DANCE_ANY_BEAT_WAV2CLIP_WEIGHTS"] = self.wav2clip
        return env


_lock = threading.Lock()
_local: LocalServer | None = None


def connect(settings: BackendSettings) -> ServerClient:
    """A client for the configured server; in local mode starts the server and waits for it (blocking)."""
    global _local
    if settings.mode == "REMOTE":
        if not settings.url:
            raise BackendError("no server URL: set one in the add-on's preferences")
        return ServerClient(settings.url, settings.token)
    with _lock:
        if _local is not None and not _local.alive():
            _local = None
        if _local is None:
            _local = LocalServer(settings.python, Path(settings.state_dir), settings.device, settings.checkpoint,
                                 settings.env())
            _local.start()
        server = _local
    return server.wait_ready()


def local_running() -> bool:
    return _local is not None and _local.alive()


def local_death_message() -> str:
    """Why the local server died, when it did (else "")."""
    server = _local
    if server is None or server.proc is None or server.alive():
        return ""
    return server.death_message()


def free() -> bool:
    """Stops the local server (its model memory goes with it). Returns whether one was running."""
    global _local
    with _lock:
        server, _local = _local, None
    if server is None:
        return False
    server.stop()
    return True


def detect_beats(settings: BackendSettings, audio: Path) -> BeatInfo:
    """The beats of an audio file (seconds on the file's clock): the only way Detect Beats reaches the backend.

    Remote mode, or a local server that is already running: `POST /beats`. Otherwise the local backend's
    `dance-any-beat beats --json` in a subprocess, which needs no model and so is quicker than starting a server.
    """
    if settings.mode == "REMOTE" or local_running():
        return connect(settings).beats(audio)
    if not settings.python or not Path(settings.python).exists():
        raise BackendError(f"the backend Python interpreter {settings.python!r} does not exist: set it in the "
                           "add-on's preferences")
    cmd = [settings.python, "-m", "dance_any_beat.cli", "beats", str(audio), "--json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BEATS_CLI_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BackendError(f"beat tracking took more than {BEATS_CLI_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BackendError("beat tracking failed: " + ("\n".join(tail) or f"exit code {proc.returncode}"))
    try:
        return BeatInfo.from_json(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise BackendError(f"beat tracking printed no JSON: {proc.stdout[-200:]!r}") from None
