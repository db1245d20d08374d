"""Dance Any Beat backend: DabFusion (latent flow diffusion conditioned on music) behind a CLI and an HTTP server."""

import os
from pathlib import Path

__version__ = "0.1.0"


def cache_dir() -> Path:
    """Per-user cache for JIT artefacts; kept across processes so a new process starts warm."""
    root = os.environ.get("DANCE_ANY_BEAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "dance_any_beat"
    )
    return Path(root)


# librosa's onset and beat code is numba-compiled; without a persistent cache a fresh process spends ~15 s
# compiling. numba reads this variable at import, so it is set before anything imports librosa.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
