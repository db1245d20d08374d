"""Dance styles shared by the procedural data set, the music synthesiser and the model's style conditioning.

Names follow the ten AIST++ genres so a model trained on the procedural set and one fine-tuned on AIST++ speak
the same vocabulary. Each module that needs style-specific behaviour (drum pattern, move vocabulary) keys its
own table by `Style.name`; this file only fixes the names, their order (the style index a model sees) and
their tempo ranges.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    name: str  # CLI and preset name
    aist_code: str  # AIST++ genre code, for the AIST++ loader
    bpm: tuple[float, float]  # tempo range the synthesiser draws from
    display_name: str  # shown in the add-on and presets
    description: str


STYLES: tuple[Style, ...] = (
    Style("break", "gBR", (100.0, 135.0), "Break", "toprock steps, deep knee drops, arm swings"),
    Style("pop", "gPO", (90.0, 120.0), "Pop", "sharp hits on the beat, isolated arm and chest pops"),
    Style("lock", "gLO", (100.0, 130.0), "Lock", "wrist rolls, points, freezes on the downbeat"),
    Style("middle_hiphop", "gMH", (85.0, 105.0), "Middle Hip-hop", "bounce, rocks and step touches"),
    Style("la_hiphop", "gLH", (85.0, 110.0), "LA Hip-hop", "grooves with big arm shapes and hits"),
    Style("house", "gHO", (118.0, 130.0), "House", "four-on-the-floor bounce, fast footwork"),
    Style("waack", "gWA", (110.0, 128.0), "Waack", "overhead arm whips and poses"),
    Style("krump", "gKR", (80.0, 105.0), "Krump", "heavy stomps, chest pops, wide arm swings"),
    Style("street_jazz", "gJS", (95.0, 125.0), "Street Jazz", "sharp lines, kicks and arm lines"),
    Style("ballet_jazz", "gJB", (80.0, 110.0), "Ballet Jazz", "extensions, arm circles, plies"),
)

STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)


def get_style(name: str) -> Style:
    """Look a style up by name, naming the valid ones when it is unknown."""
    for style in STYLES:
        if style.name == name:
            return style
    raise ValueError(f"unknown dance style {name!r}; choose one of: {', '.join(STYLE_NAMES)}")


def style_index(name: str) -> int:
    return STYLE_NAMES.index(get_style(name).name)
