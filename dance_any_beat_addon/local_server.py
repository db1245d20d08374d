"""Starts and stops a local `dance-any-beat serve` process; bpy-free.

The add-on makes a random bearer token, writes it to a private token file the server reads, starts the server
on 127.0.0.1 with a free port, and waits (on a worker thread, or blocking in background mode) for the one JSON
line the server prints once it is ready. A server that dies is noticed and its last stderr lines reported.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from .client import BackendError, ServerClient

STARTUP_TIMEOUT = 300.0  # seconds to wait for "ready" (loading a model on a slow CPU)


class LocalServer:
    def __init__(self, python: str, state_dir: Path, device: str = "auto", checkpoint: str = "",
                 env: dict[str, str] | None = None):
        self.python = python
        self.state_dir = Path(state_dir)
        self.device = device
        self.checkpoint = checkpoint
        self.env = env or {}
        self.token = secrets.token_urlsafe(32)
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._ready = threading.Event()

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "dance_any_beat.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--token-file", str(self.state_dir / "token"), "--jobs-dir", str(self.state_dir / "jobs"),
               "--device", self.device]
        if self.checkpoint:
            cmd += ["--checkpoint", self.checkpoint]
        return cmd

    def start(self) -> None:
        """Starts the process and returns at once; `wait_ready` waits for it."""
        if not self.python or not Path(self.python).exists():
            raise BackendError(f"the backend Python interpreter {self.python!r} does not exist: set it in the "
                               "add-on's preferences (or use Set up backend)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.state_dir / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **self.env})
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.url is None:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                if isinstance(info, dict) and info.get("url"):
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
        tail = "\n".join(self._stderr) or "(no output)"
        return f"the local Dance Any Beat backend stopped (exit code {code}). Its last output:\n{tail}"

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ServerClient:
        """Blocks until the server is ready; raises BackendError if it dies or takes too long."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.alive():
                time.sleep(0.2)  # let the stderr reader catch the last lines
                raise BackendError(self.death_message())
            if time.monotonic() > deadline:
                self.stop()
                raise BackendError(f"the local backend did not become ready in {timeout:.0f} s")
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
