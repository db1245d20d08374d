"""Starts and stops a local `dance-any-beat serve` process; bpy-free.

The handshake is the server's own (`dance-any-beat serve --help`): the add-on starts it on 127.0.0.1 with port 0
and `--token-file F` for a file that does not exist yet, so the server generates a random token and writes it to
F (mode 0600); once the model is loaded the server prints one JSON line on stdout, {url, pid, token_file,
jobs_dir, version}, and the add-on reads the token from the file that line names. DANCE_ANY_BEAT_TOKEN is
removed from the child's environment (it would take precedence over the file). Waiting happens on a worker
thread, or blocking in background mode; a server that dies is noticed and its last stderr lines reported.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .client import BackendError, ServerClient

STARTUP_TIMEOUT = 300.0  # seconds to wait for "ready" (loading a model on a slow CPU)
TOKEN_ENV = "DANCE_ANY_BEAT_TOKEN"  # the server reads its token from here first; never passed to a local server


class LocalServer:
    def __init__(self, python: str, state_dir: Path, device: str = "auto", checkpoint: str = "",
                 clap_weights: str = "", wav2clip_weights: str = "", env: dict[str, str] | None = None):
        self.python = python
        self.state_dir = Path(state_dir)
        self.device = device
        self.checkpoint = checkpoint
        self.clap_weights = clap_weights  # serve --clap-weights (empty: the path in the checkpoint's config)
        self.wav2clip_weights = wav2clip_weights  # serve --wav2clip-weights
        self.env = env or {}
        self.token = ""
        self.url: str | None = None
        self.ready: dict[str, Any] = {}
        """The server's ready line: url, pid, token_file, jobs_dir, version."""
        self.proc: subprocess.Popen | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._ready = threading.Event()

    @property
    def token_file(self) -> Path:
        return self.state_dir / "token"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    def command(self) -> list[str]:
        """The `serve` command line; every option is one `dance-any-beat serve --help` lists."""
        cmd = [self.python, "-m", "dance_any_beat.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--token-file", str(self.token_file), "--jobs-dir", str(self.jobs_dir), "--device", self.device]
        if self.checkpoint:
            cmd += ["--checkpoint", self.checkpoint]
        if self.clap_weights:
            cmd += ["--clap-weights", self.clap_weights]
        if self.wav2clip_weights:
            cmd += ["--wav2clip-weights", self.wav2clip_weights]
        return cmd

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.pop(TOKEN_ENV, None)
        return env

    def start(self) -> None:
        """Starts the process and returns at once; `wait_ready` waits for it."""
        if not self.python or not Path(self.python).exists():
            raise BackendError(f"the backend Python interpreter {self.python!r} does not exist: set Python in the "
                               "add-on's preferences to an interpreter with dance-any-beat installed, or press Set "
                               "up backend there")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.token_file.unlink(missing_ok=True)  # a fresh token for every server: it writes a new one here
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.environment())
        _started[:] = [s for s in _started if s.alive()] + [self]
        threading.Thread(target=self._read_stdout, name="dance-any-beat server stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="dance-any-beat server stderr", daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._ready.is_set():
                continue
            try:
                info = json.loads(line)
            except ValueError:
                continue
            if isinstance(info, dict) and info.get("url"):
                self.ready = info
                try:
                    self.token = Path(info.get("token_file") or self.token_file).read_text(encoding="utf-8").strip()
                except OSError as err:
                    self._stderr.append(f"(the add-on could not read the server's token file: {err})")
                    continue
                self.url = str(info["url"])
                self._ready.set()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def death_message(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        if code is not None and code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        tail = "\n".join(self._stderr) or "(no output)"
        hint = ""
        if "No module named" in tail and "dance_any_beat" in tail:
            hint = (f"\n{self.python} has no dance-any-beat installed: set Python in the add-on's preferences to "
                    "the backend's interpreter, or press Set up backend there")
        return f"the local Dance Any Beat backend stopped ({how}). Its last output:\n{tail}{hint}"

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ServerClient:
        """Blocks until the server is ready; raises BackendError if it dies or takes too long."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.alive():
                if self._ready.wait(0.3):  # it printed its ready line and died at once: report the death
                    break
                time.sleep(0.2)  # let the stderr reader catch the last lines
                raise BackendError(self.death_message())
            if time.monotonic() > deadline:
                self.stop()
                raise BackendError(f"the local backend did not become ready in {timeout:.0f} s")
        if not self.alive():
            time.sleep(0.2)
            raise BackendError(self.death_message())
        return self.client()

    def client(self) -> ServerClient:
        if self.url is None:
            raise BackendError("the local backend is not ready yet")
        return ServerClient(self.url, self.token)

    def stop(self, timeout: float = 5.0) -> None:
        """Asks the server to shut down, then terminates it; frees its memory with the process."""
        if self.proc is None:
            return
        if self.alive() and self.url is not None:
            try:
                self.client().shutdown()
            except BackendError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_started: list[LocalServer] = []


@atexit.register
def _stop_all() -> None:
    """Blender quits: no local server outlives it."""
    for server in _started:
        if server.alive():
            try:
                server.stop(timeout=2.0)
            except Exception:  # quitting anyway
                pass
