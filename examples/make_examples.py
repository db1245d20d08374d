"""Regenerate the bundled example media (the project's own work, GPL-3.0-or-later like the code).

    .venv/bin/python examples/make_examples.py

example_track.ogg: 16 s of the project's synthesised music (style "lock", 104 BPM, with a backbeat).
"""

from pathlib import Path

import soundfile as sf

from dance_any_beat.data.music_synth import synthesize_music

HERE = Path(__file__).resolve().parent
TRACK = dict(style="lock", bpm=104.0, seconds=16.0, sr=44100, seed=2026, first_beat=0.25)


def main() -> None:
    music = synthesize_music(TRACK["style"], TRACK["bpm"], TRACK["seconds"], sr=TRACK["sr"], seed=TRACK["seed"],
                             first_beat=TRACK["first_beat"])
    sf.write(HERE / "example_track.ogg", music.audio, music.sr, format="OGG", subtype="VORBIS")
    (HERE / "example_track_beats.txt").write_text(
        "# ground-truth beat times (s) of example_track.ogg, one per line\n"
        + "".join(f"{t:.4f}\n" for t in music.beat_times)
    )
    print(f"wrote example_track.ogg ({len(music.beat_times)} beats at {music.bpm:g} BPM)")


if __name__ == "__main__":
    main()
