""""Set up backend": a virtual environment with the bundled backend pip-installed into it; bpy-free.

The extension zip carries the backend's sources (`pyproject.toml`, `backend/dance_any_beat/`, `presets/`) next
to the add-on, so the install needs no repository checkout, but pip downloads PyTorch and the backend's other
dependencies from the Python Package Index: the operator runs this only with Blender's online access on. The
steps run one after the other on a worker thread; their output goes to a log file, and `snapshot()` gives the
main thread the stage and a progress estimate to draw.
"""

from __future__ import annotations

import copy
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1]  # the extension's root (the repository's root in a checkout)
VENV_NAME = "backend-venv"
LOG_NAME = "setup-backend.log"


def venv_python(venv: Path) -> Path:
    """The interpreter inside a venv made by `python -m venv`."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def check_source(source: Path = SOURCE_DIR) -> None:
    """Raises FileNotFoundError unless `source` holds the backend (a pip-installable project)."""
    missing = [p for p in ("pyproject.toml", "backend/dance_any_beat/__init__.py") if not (source / p).is_file()]
    if missing:
        raise FileNotFoundError(f"the extension folder {source} lacks {', '.join(missing)}: reinstall the "
                                "extension, or install the backend yourself and set Python to its interpreter")


def setup_commands(base_python: str, venv: Path, source: Path = SOURCE_DIR) -> list[list[str]]:
    """The commands "Set up backend" runs: make the venv with `base_python` (Blender's own Python: the backend
    needs 3.11, which Blender 4.2 to 5.0 bundle), then pip-install the bundled backend into it."""
    python = str(venv_python(venv))
    return [
        [base_python, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", str(source)],
    ]


@dataclass
class SetupSnapshot:
    stage: str = "starting"
    progress: float = 0.0
    done: bool = False
    error: str | None = None
    python: str = ""
    """The venv's interpreter, set once the install succeeded."""
    log: str = ""


# Stage weights: making the venv is quick; pip's resolving and downloading dominate, installing comes last.
_VENV_DONE = 0.05
_DOWNLOADS_END = 0.8


class BackendSetup:
    """Runs `commands` in order on a daemon thread (`start`) or in the caller (`run`); output to `log_path`."""

    def __init__(self, commands: list[list[str]], python: Path, log_path: Path):
        self.commands = commands
        self.python = python
        self.log_path = Path(log_path)
        self._lock = threading.Lock()
        self._snap = SetupSnapshot(log=str(self.log_path))
        self._proc: subprocess.Popen | None = None
        self._cancel = threading.Event()

    def snapshot(self) -> SetupSnapshot:
        with self._lock:
            return copy.deepcopy(self._snap)

    def _update(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._snap, key, value)

    def start(self) -> BackendSetup:
        threading.Thread(target=self.run, name="dance-any-beat setup", daemon=True).start()
        return self

    def cancel(self) -> None:
        self._cancel.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def run(self) -> None:
        try:
            self._run()
        except Exception as err:  # shown to the artist by the main thread
            self._update(error=str(err) or type(err).__name__, done=True, stage="failed")

    def _run(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n=== Set up backend, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            for i, cmd in enumerate(self.commands):
                if self._cancel.is_set():
                    self._update(error="cancelled", done=True, stage="cancelled")
                    return
                self._update(stage="creating the virtual environment" if i == 0 else "installing the backend")
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                code = self._run_one(cmd, log, first=i == 0)
                if code != 0:
                    lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-4:]
                    self._update(error=f"`{' '.join(cmd[:4])} ...` failed (exit code {code}); see the log "
                                       f"{self.log_path}:\n" + "\n".join(lines), done=True, stage="failed")
                    return
        if not self.python.exists():
            self._update(error=f"the install finished but {self.python} does not exist", done=True, stage="failed")
            return
        self._update(stage="done", progress=1.0, python=str(self.python), done=True)

    def _run_one(self, cmd: list[str], log, first: bool) -> int:
        self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        packages = 0
        for line in proc.stdout:
            log.write(line)
            log.flush()
            text = line.strip()
            if first or not text:
                continue
            if text.startswith(("Collecting ", "Downloading ", "Processing ")):
                packages += text.startswith("Collecting ")
                # resolving and downloading: creeps towards _DOWNLOADS_END as packages arrive (~60 of them)
                share = packages / (packages + 30)
                self._update(stage=text[:100], progress=_VENV_DONE + (_DOWNLOADS_END - _VENV_DONE) * share)
            elif text.startswith(("Installing collected packages", "Building wheel", "Successfully")):
                self._update(stage=text[:100], progress=max(self.snapshot().progress, _DOWNLOADS_END))
        code = proc.wait()
        self._proc = None
        if first and code == 0:
            self._update(progress=_VENV_DONE)
        return code


_current: BackendSetup | None = None


def current() -> BackendSetup | None:
    """The setup of this Blender session (running or finished), if one was started."""
    return _current


def begin(setup: BackendSetup) -> BackendSetup:
    """Makes `setup` the session's current one (the preferences draw it)."""
    global _current
    _current = setup
    return setup
