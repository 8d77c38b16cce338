"""The randomised classes of the ``actions101`` benchmark: what moves, how it moves and where, drawn from a seed.

No one designed these 101 classes one by one: :func:`draw_classes` draws each from a seeded generator over

- **what moves** (:data:`ACTORS`): a flat ``shape`` with a marking, an articulated stick ``figure``, a
  textured ``patch``, an ``object`` with a small moving part, or a ``duo`` of shapes that interact;
- **how it moves** (:data:`MOTIONS`, per actor): translation, rotation, scaling, deformation, limb motion,
  appearing and vanishing, bouncing, a part on a still object, pushing, merging, chasing ...; each
  ``once`` (a monotone progress over the clip), ``sine`` (back and forth), ``saw`` (a quick stroke and a
  slow return) or ``loop`` (round and round one way);
- **where**: a background kind, a camera style (still, hand-held, panning, zooming), clutter, lighting
  (steady, drifting, flickering) and sensor noise.

The classes come in units (:data:`UNITS`): 22 order pairs (the second class is the first's motion reversed
in time, or mirrored in direction: every directional motion runs the other way), 8 fine pairs (the second
runs the same path 2-2.6x faster, or moves another small part of the same object) and 41 single classes.
Both classes of a pair share every class-level draw, and their clips draw appearance independently, so no
single frame tells them apart: only the order, direction or speed of motion does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTORS: tuple[str, ...] = ("shape", "figure", "patch", "object", "duo")
ACTOR_WEIGHTS = (0.26, 0.22, 0.16, 0.14, 0.22)
SHAPES: tuple[str, ...] = ("disk", "ellipse", "square", "triangle", "star", "cross", "hexagon", "arrow")
OBJECT_BODIES: tuple[str, ...] = ("box", "tall", "disk")
BACKGROUNDS: tuple[str, ...] = ("gradient", "stripes", "checker", "blobs", "room", "outdoor", "grain")
CAMERAS: tuple[str, ...] = ("still", "handheld", "pan", "zoom")
LIGHTING: tuple[str, ...] = ("steady", "drift", "flicker")

MOTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "shape": {"translate": ("once", "sine", "saw"), "orbit": ("loop",), "spin": ("loop",), "turn": ("once", "saw"),
              "scale": ("once", "sine", "saw"), "squash": ("sine", "saw"), "wobble": ("loop",),
              "fade": ("once", "sine", "saw"), "wipe": ("once",), "bounce": ("once",)},
    "patch": {"translate": ("once", "sine", "saw"), "spin": ("loop",), "turn": ("once", "saw"),
              "scale": ("once", "sine", "saw"), "squash": ("sine", "saw"), "scroll": ("loop",),
              "fade": ("once", "saw"), "wipe": ("once",)},
    "figure": {"raise": ("once", "sine", "saw"), "wave": ("sine",), "jack": ("sine", "saw"),
               "squat": ("once", "sine", "saw"), "kick": ("once", "saw"), "bow": ("once", "sine"), "clap": ("sine",),
               "swim": ("loop",), "walk": ("loop",), "reach": ("once", "saw"), "punch": ("saw",)},
    "object": {"hand": ("loop",), "pendulum": ("sine",), "blink": ("sine", "saw"), "slide": ("once", "saw"),
               "lid": ("once", "saw"), "needle": ("once", "saw")},
    "duo": {"push": ("once",), "merge": ("once",), "orbit": ("loop",), "chase": ("loop",), "carry": ("once",),
            "drop": ("once",), "bump": ("sine",)},
}
"""Per actor, each motion and the waveforms it may run with."""

DIRECTIONAL = frozenset({"translate", "orbit", "spin", "turn", "wobble", "scroll", "swim", "walk", "hand", "chase",
                         "carry", "bounce"})
"""Motions whose direction a mirror reverses with the same distribution of single frames."""
PALINDROMES = frozenset({"bump"})
"""Motions that look the same played backwards whatever their waveform."""
SECONDARY = ("spin", "scale", "squash", "translate")
"""Motions a shape or patch may add to its main one (at a slower pace)."""

UNITS = {"reverse": 11, "mirror": 11, "speed": 4, "part": 4, "single": 41}
"""How many units of each kind: pairs (two classes each) and single classes; 2 * 30 + 41 = 101."""


@dataclass(frozen=True)
class Motion:
    """One motion of a class; the per-clip draws (phase, exact speed, jitter) happen at render time."""

    kind: str
    """A key of :data:`MOTIONS` for the class's actor."""
    wave: str
    """``once``, ``sine``, ``saw`` or ``loop``."""
    freq: float
    """Cycles per second (``sine``, ``saw``, ``loop``)."""
    amount: float
    """Size of the motion in the kind's unit, 0.5-1.5 times its typical size."""
    heading: float
    """Direction of travel in radians (0: to the right), for the kinds that travel."""
    side: int
    """+1 or -1: which arm or leg, which way a figure leans, where a part sits."""


@dataclass(frozen=True)
class ClassSpec:
    """One class: everything its clips share. Both classes of a pair differ only in ``reverse``, ``mirror``,
    ``speed`` or the part's motion."""

    name: str
    index: int
    """0-based position in ``classInd.txt``; also the class's random-stream key."""
    actor: str
    shape: str
    """A :data:`SHAPES` name (an :data:`OBJECT_BODIES` name for objects, ``figure`` for figures)."""
    motions: tuple[Motion, ...]
    """The main motion first, then at most one slower secondary motion."""
    background: str
    """Preferred background kind: 60% of the groups use it, the rest draw any kind."""
    camera: str
    clutter: int
    """0-3: static clutter drawn into the background, moving distractors from 2."""
    lighting: str
    noise: float
    """Sensor noise standard deviation in grey levels."""
    reverse: bool = False
    """The motion timeline is played backwards (the second class of a ``reverse`` pair)."""
    mirror: bool = False
    """Every directional motion runs the other way (the second class of a ``mirror`` pair)."""
    speed: float = 1.0
    """How much faster the motion runs (the second class of a ``speed`` pair)."""
    relation: str = "single"
    """``single``, or the pair kind: ``reverse``, ``mirror``, ``speed``, ``part``."""
    partner: str = ""
    """The other class of the pair."""
    second: bool = False
    """The second class of its pair (the reversed, mirrored, faster one, or the other part motion)."""
    description: str = ""


def _camel(word: str) -> str:
    return "".join(part.capitalize() for part in word.split("_"))


_WAVE_WORD = {"once": "", "sine": "Periodic", "saw": "Jerky", "loop": ""}
_WAVE_PHRASE = {"once": "once over the clip", "sine": "back and forth", "saw": "in quick strokes with slow returns",
                "loop": "continuously"}


def _motion(rng: np.random.Generator, kind: str, wave: str) -> Motion:
    return Motion(kind=kind, wave=wave, freq=float(rng.uniform(0.35, 1.2)), amount=float(rng.uniform(0.6, 1.4)),
                  heading=float(rng.uniform(-0.5, 0.5) + (math.pi if rng.random() < 0.5 else 0.0)),
                  side=int(rng.choice([-1, 1])))


def _choose_motion(rng: np.random.Generator, actor: str, need: str) -> Motion:
    """A motion of ``actor`` that a pair of kind ``need`` can tell apart (``single``/``part``: any)."""
    options = []
    for kind, waves in MOTIONS[actor].items():
        for wave in waves:
            if need == "reverse" and (wave == "sine" or kind in PALINDROMES):
                continue  # played backwards a sine looks the same
            if need == "mirror" and (kind not in DIRECTIONAL or wave == "sine"):
                continue
            if need == "speed" and wave == "once" and kind in ("wipe", "merge"):
                continue
            options.append((kind, wave))
    kind, wave = options[int(rng.integers(len(options)))]
    return _motion(rng, kind, wave)


def _secondary(rng: np.random.Generator, actor: str, main: Motion) -> tuple[Motion, ...]:
    if actor not in ("shape", "patch") or rng.random() > 0.35:
        return ()
    kinds = [k for k in SECONDARY if k != main.kind and not (main.kind in ("orbit", "bounce") and k == "translate")]
    kind = kinds[int(rng.integers(len(kinds)))]
    m = _motion(rng, kind, "loop" if kind == "spin" else "sine")
    return (Motion(m.kind, m.wave, m.freq * 0.5, m.amount * 0.5, m.heading, m.side),)


def _base_spec(rng: np.random.Generator, need: str) -> ClassSpec:
    actor = "object" if need == "part" else ACTORS[int(rng.choice(len(ACTORS), p=ACTOR_WEIGHTS))]
    if actor == "figure":
        shape = "figure"
    elif actor == "object":
        shape = OBJECT_BODIES[int(rng.integers(len(OBJECT_BODIES)))]
    else:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
    main = _choose_motion(rng, actor, need)
    return ClassSpec(name="", index=-1, actor=actor, shape=shape, motions=(main, *_secondary(rng, actor, main)),
                     background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
                     camera=CAMERAS[int(rng.choice(len(CAMERAS), p=(0.35, 0.3, 0.2, 0.15)))],
                     clutter=int(rng.integers(0, 4)), lighting=LIGHTING[int(rng.choice(3, p=(0.5, 0.3, 0.2)))],
                     noise=float(rng.choice([0.0, 2.0, 4.0, 7.0])))


def _name(spec: ClassSpec) -> str:
    main = spec.motions[0]
    return f"{_camel(spec.shape)}{_camel(main.kind)}{_WAVE_WORD[main.wave]}"


_VERBS = {
    "translate": "moves along a line", "orbit": "circles a point", "spin": "spins", "turn": "turns through an angle",
    "scale": "grows", "squash": "squashes and stretches", "wobble": "wobbles (a wave runs round its outline)",
    "fade": "fades in", "wipe": "is uncovered from one side", "bounce": "drops and bounces", "scroll": "scrolls",
    "raise": "raises both arms", "wave": "waves one hand", "jack": "does jumping jacks", "squat": "squats",
    "kick": "kicks one leg out", "bow": "leans sideways at the waist", "clap": "claps", "swim": "circles both arms",
    "walk": "walks across", "reach": "reaches out one arm", "punch": "punches with one arm",
    "hand": "a hand goes round", "pendulum": "a pendulum swings", "blink": "a lamp blinks",
    "slide": "a drawer slides out", "lid": "a lid opens", "needle": "a gauge's needle sweeps",
    "push": "one pushes the other", "merge": "one moves into the other and vanishes",
    "chase": "one chases the other round a circle", "carry": "one carries the other across",
    "drop": "one drops onto the other and bounces", "bump": "meet and part",
}
_SUBJECT = {"shape": "{a} {} with a mark", "patch": "a textured {} patch", "figure": "a stick figure",
            "object": "on a still {} object,", "duo": "two {}{s}:"}


def _describe(spec: ClassSpec) -> str:
    main = spec.motions[0]
    verb = "one circles the other" if spec.actor == "duo" and main.kind == "orbit" else _VERBS[main.kind]
    subject = _SUBJECT[spec.actor].format(spec.shape, a="an" if spec.shape[0] in "aeiou" else "a",
                                          s="es" if spec.shape.endswith(("s", "x")) else "s")
    text = f"{subject} {verb} {_WAVE_PHRASE[main.wave]}"
    if main.wave != "once":
        text += f" at {main.freq * spec.speed:.2f} Hz"
    if len(spec.motions) > 1:
        text += f", and slowly {_VERBS[spec.motions[1].kind]}"
    text += (f"; {spec.background} scene, {spec.camera} camera, clutter {spec.clutter}, {spec.lighting} light, "
             f"noise {spec.noise:g}")
    relation = {"reverse": f" (the motion of {spec.partner} played backwards)",
                "mirror": f" (the motion of {spec.partner} the other way round)",
                "speed": f" (the path of {spec.partner}, {spec.speed:.1f}x faster)",
                "part": f" (the object of {spec.partner}, another part moving)"}
    return text + (relation[spec.relation] if spec.second else "")


def _second_of(rng: np.random.Generator, first: ClassSpec, kind: str) -> ClassSpec:
    """The partner of ``first`` in a pair of ``kind``."""
    if kind == "reverse":
        return ClassSpec(**{**first.__dict__, "reverse": True})
    if kind == "mirror":
        return ClassSpec(**{**first.__dict__, "mirror": True})
    if kind == "speed":
        return ClassSpec(**{**first.__dict__, "speed": float(rng.uniform(2.0, 2.6))})
    others = [k for k in MOTIONS["object"] if k != first.motions[0].kind]
    kind_b = others[int(rng.integers(len(others)))]
    part = _motion(rng, kind_b, MOTIONS["object"][kind_b][int(rng.integers(len(MOTIONS["object"][kind_b])))])
    return ClassSpec(**{**first.__dict__, "motions": (part,)})


def draw_classes(seed: int = 0) -> list[ClassSpec]:
    """The 101 classes of the benchmark drawn with ``seed``, in ``classInd.txt`` order.

    Units are shuffled, so pairs and single classes interleave; a pair's second class follows its first."""
    rng = np.random.default_rng([seed, 101_101])
    kinds = [k for k, count in UNITS.items() for _ in range(count)]
    units: list[list[ClassSpec]] = []
    for i in rng.permutation(len(kinds)):
        first = ClassSpec(**{**_base_spec(rng, kinds[i]).__dict__, "relation": kinds[i]})
        units.append([first] if kinds[i] == "single" else [first, _second_of(rng, first, kinds[i])])
    used: dict[str, int] = {}

    def unique(name: str) -> str:
        used[name] = used.get(name, 0) + 1
        return name if used[name] == 1 else f"{name}{used[name]}"

    specs: list[ClassSpec] = []
    for unit in units:
        a = ClassSpec(**{**unit[0].__dict__, "index": len(specs), "name": unique(_name(unit[0]))})
        if len(unit) == 1:
            specs.append(a)
            continue
        b = unit[1]
        word = {"reverse": "Reversed", "mirror": "Mirrored", "speed": "Fast"}.get(b.relation)
        b = ClassSpec(**{**b.__dict__, "index": len(specs) + 1, "name": a.name + word if word else unique(_name(b)),
                         "partner": a.name, "second": True})
        specs += [ClassSpec(**{**a.__dict__, "partner": b.name}), b]
    return [ClassSpec(**{**s.__dict__, "description": _describe(s)}) for s in specs]


def pairs(specs: list[ClassSpec]) -> list[tuple[str, str, str]]:
    """``(first, second, kind)`` for every pair whose two classes are both in ``specs``."""
    names = {s.name for s in specs}
    return [(s.partner, s.name, s.relation) for s in specs if s.second and s.partner in names]
