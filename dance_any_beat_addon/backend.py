"""Which server the add-on talks to, and the functions the operators reach it through; bpy-free.

The operators copy the preferences into a `BackendSettings` on the main thread; everything here may then run on
a worker thread. Local mode keeps one `LocalServer` per Blender session (started on first use, stopped by
"Free Backend Memory"); remote mode is a URL and a token, and needs Blender's online access unless the URL is
this machine (a loopback address).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import BackendError, ServerClient
from .local_server import LocalServer
from .payload import BeatInfo

BEATS_CLI_TIMEOUT = 300.0  # seconds
ONLINE_ACCESS_HINT = ("enable Preferences > System > Network > Allow Online Access (or start Blender with "
                      "--online-mode)")


@dataclass(frozen=True)
class BackendSettings:
    mode: str  # "LOCAL" or "REMOTE"
    python: str = ""  # local: the backend's Python interpreter
    url: str = ""  # remote: server URL
    token: str = ""  # remote: bearer token
    device: str = "auto"  # local: serve --device
    checkpoint: str = ""  # local: serve --checkpoint (empty: the bundled starter model)
    clap_weights: str = ""  # local: serve --clap-weights (empty: the path in the checkpoint's config)
    wav2clip_weights: str = ""  # local: serve --wav2clip-weights (likewise)
    state_dir: str = ""  # local: where the token file and the jobs folder live
    online_access: bool = True  # bpy.app.online_access, read on the main thread


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url if "//" in url else f"http://{url}").hostname or ""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_lock = threading.Lock()
_local: LocalServer | None = None
_local_key: tuple | None = None  # the settings _local was started for (its state_dir may be a session folder)
JOBS_FOLDER_TAKEN = "is using the jobs folder"  # `serve`'s message when another server holds its jobs folder


def connect(settings: BackendSettings) -> ServerClient:
    """A client for the configured server; in local mode starts the server and waits for it (blocking)."""
    global _local
    if settings.mode == "REMOTE":
        if not settings.url:
            raise BackendError("no server URL: set one in the add-on's preferences (Backend: Remote)")
        if not settings.online_access and not is_loopback_url(settings.url):
            raise BackendError(f"online access is off, and the remote backend {settings.url} is another machine: "
                               f"{ONLINE_ACCESS_HINT}, or use a Local backend")
        return ServerClient(settings.url, settings.token)
    global _local_key
    wanted = (settings.python, Path(settings.state_dir), settings.device, settings.checkpoint,
              settings.clap_weights, settings.wav2clip_weights)
    with _lock:
        if _local is not None and not _local.alive():
            _local = None
        if _local is not None and _local_key != wanted:  # the preferences changed: a new server replaces it
            _local.stop()
            _local = None
        if _local is None:
            _local, _local_key = LocalServer(*wanted), wanted
            _local.start()
        server = _local
    try:
        return server.wait_ready()
    except BackendError as err:
        if JOBS_FOLDER_TAKEN not in str(err):
            raise
    with _lock:  # another Blender's backend holds the shared jobs folder: this session gets its own
        if _local is server:
            _local = LocalServer(wanted[0], wanted[1] / f"session-{os.getpid()}", *wanted[2:])
            _local.start()
        server = _local
    return server.wait_ready()


def local_running() -> bool:
    return _local is not None and _local.alive()


def local_server() -> LocalServer | None:
    """The local server of this session (running, starting or dead), if one was started."""
    return _local


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
    running = server.alive()
    server.stop()
    return running


def describe_health(health: dict[str, Any]) -> str:
    """One line for "Test connection": version, device and model (or why there is none)."""
    model = health.get("model")
    if isinstance(model, dict):
        what = f"model {model.get('name', '?')} ({int(model.get('parameters') or 0):,} parameters)"
    else:
        what = f"no model: {health.get('model_error') or 'unknown reason'}"
    return f"Dance Any Beat {health.get('version', '?')} on {health.get('device', '?')}, {what}"


def test_connection(settings: BackendSettings) -> str:
    """Connects (local mode: starts the backend), checks the token and returns `describe_health`'s line."""
    client = connect(settings)
    health = client.health()
    if not isinstance(health, dict):
        raise BackendError("GET /health: the server did not send an object")
    client.presets()  # the one check of the token: /health needs none
    return describe_health(health)


def detect_beats(settings: BackendSettings, audio: Path) -> BeatInfo:
    """The beats of an audio file (seconds on the file's clock): the only way Detect Beats reaches the backend.

    Remote mode, or a local server that is already running: `POST /beats`. Otherwise the local backend's
    `dance-any-beat beats --json` in a subprocess, which needs no model and so is quicker than starting a server.
    """
    if settings.mode == "REMOTE" or local_running():
        return connect(settings).beats(audio)
    if not settings.python or not Path(settings.python).exists():
        raise BackendError(f"the backend Python interpreter {settings.python!r} does not exist: set Python in the "
                           "add-on's preferences, or press Set up backend there")
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
