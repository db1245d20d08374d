"""Regenerate the bundled example media (the project's own work, GPL-3.0-or-later like the code).

    .venv/bin/python examples/make_examples.py

example_track.ogg: 16 s of the project's synthesised music (style "lock", 104 BPM, with a backbeat).
example_still.png: a 384x512 still of a procedural dancer (the look the starter model was trained on).
"""

from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.data.procedural import dance_to_beats

HERE = Path(__file__).resolve().parent
TRACK = dict(style="lock", bpm=104.0, seconds=16.0, sr=44100, seed=2026, first_beat=0.25)
STILL = dict(seed=7, style="pop", size=512, width=384)


def main() -> None:
    music = synthesize_music(TRACK["style"], TRACK["bpm"], TRACK["seconds"], sr=TRACK["sr"], seed=TRACK["seed"],
                             first_beat=TRACK["first_beat"])
    sf.write(HERE / "example_track.ogg", music.audio, music.sr, format="OGG", subtype="VORBIS")
    (HERE / "example_track_beats.txt").write_text(
        "# ground-truth beat times (s) of example_track.ogg, one per line\n"
        + "".join(f"{t:.4f}\n" for t in music.beat_times)
    )
    frames, _ = dance_to_beats(STILL["seed"], np.arange(4) * 0.5, seconds=1.0, style=STILL["style"], fps=1,
                               size=STILL["size"])
    left = (STILL["size"] - STILL["width"]) // 2
    still = frames[0][:, left : left + STILL["width"]]  # portrait crop: any aspect is allowed
    cv2.imwrite(str(HERE / "example_still.png"), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    print(f"wrote example_track.ogg ({len(music.beat_times)} beats at {music.bpm:g} BPM)")


if __name__ == "__main__":
    main()
