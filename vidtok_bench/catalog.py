"""Published facts about the named evaluation sets that can be downloaded: files, frame counts,
sizes, download URLs, and checksums where they are actually known.

Why: results on a named set are only comparable when the set is complete and unchanged, and
users download these sets by hand. ``vidtok-bench data verify NAME --root DIR`` checks a
download against these facts and ``data fetch`` downloads where a URL is known. A value that
is not published (or not checked here) is None and is reported as "not checked", never guessed:
no sha256 is recorded for any set yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .data import walk_files
from .errors import DatasetError, UnknownNameError, VideoError, check_path
from .video.yuv import yuv420_frame_bytes


@dataclass(frozen=True)
class ExpectedVideo:
    name: str  # the video's id
    files: tuple[str, ...]  # accepted file (or frame-folder) names, the published one first
    frames: int | None = None  # published frame count (None: not recorded here)
    size_bytes: int | None = None  # exact file size, where it follows from published facts
    sha256: str | None = None  # only if actually known; None: not checked


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str | None = None  # only if actually known
    size_bytes: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    layout: str  # "files": one file per video (searched recursively); "sequences": one folder of frames per video
    videos: tuple[ExpectedVideo, ...]
    downloads: tuple[Download, ...] = ()
    subdirs: tuple[str, ...] = ()  # "sequences": folders under the root holding the sequence folders
    frame_height: int | None = None  # "sequences": every frame's height
    how_to_get: str = ""
    run_hint: str = ""  # how to run on it once downloaded; {root} is the folder given to fetch

    def locate(self, root: str | Path) -> dict[str, Path]:
        """Each expected video found under ``root`` (name -> path); absent ones are left out."""
        root = Path(root)
        if self.layout == "sequences":
            base = self.sequences_root(root)
            return {v.name: base / f for v in self.videos for f in v.files[:1] if (base / f).is_dir()}
        wanted = {f.lower(): v.name for v in self.videos for f in v.files}
        found: dict[str, Path] = {}
        for p in walk_files(root):
            name = wanted.get(p.name.lower())
            if name is not None and name not in found:
                found[name] = p
        return found

    def sequences_root(self, root: Path) -> Path:
        for sub in self.subdirs:
            if (root / sub).is_dir():
                return root / sub
        return root


UVG_FRAME_BYTES = yuv420_frame_bytes(1920, 1080)


def _uvg(name: str, frames: int, aliases: tuple[str, ...] = ()) -> ExpectedVideo:
    files = tuple(f"{n}_1920x1080_120fps_420_8bit_YUV.yuv" for n in (name, *aliases))
    return ExpectedVideo(name, files, frames, frames * UVG_FRAME_BYTES)


def _uvg_archive(name: str) -> Download:
    return Download(f"https://ultravideo.fi/video/{name}_1920x1080_120fps_420_8bit_YUV_RAW.7z")


DAVIS_2017_VAL = (
    "bike-packing", "blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "car-shadow", "cows",
    "dance-twirl", "dog", "dogs-jump", "drift-chicane", "drift-straight", "goat", "gold-fish", "horsejump-high",
    "india", "judo", "kite-surf", "lab-coat", "libby", "loading", "mbike-trick", "motocross-jump",
    "paragliding-launch", "parkour", "pigs", "scooter-black", "shooting", "soapbox",
)

CATALOG: dict[str, CatalogEntry] = {
    "uvg": CatalogEntry(
        name="uvg",
        title="UVG: the 7 classic 1920x1080 8-bit YUV 4:2:0 120 fps sequences (Ultra Video Group, Tampere University)",
        layout="files",
        videos=(
            _uvg("Beauty", 600), _uvg("Bosphorus", 600), _uvg("HoneyBee", 600), _uvg("Jockey", 600),
            # the download is named ReadySetGo; unpacked files are seen as ReadySteadyGo and ReadySetGo
            _uvg("ReadySteadyGo", 600, ("ReadySetGo",)), _uvg("ShakeNDry", 300), _uvg("YachtRide", 600),
        ),
        downloads=tuple(_uvg_archive(n) for n in
                        ("Beauty", "Bosphorus", "HoneyBee", "Jockey", "ReadySetGo", "ShakeNDry", "YachtRide")),
        how_to_get="download the seven *_1920x1080_120fps_420_8bit_YUV_RAW.7z archives from https://ultravideo.fi "
                   "(or run `vidtok-bench data fetch uvg --root DIR`) and unpack them into one folder",
        run_hint="vidtok-bench run dataset=uvg dataset.root={root}",
    ),
    "davis2017_val": CatalogEntry(
        name="davis2017_val",
        title="DAVIS 2017 val: 30 sequences of 480p JPEG frames (ImageSets/2017/val.txt of DAVIS-2017-trainval-480p)",
        layout="sequences",
        videos=tuple(ExpectedVideo(s, (s,)) for s in DAVIS_2017_VAL),
        downloads=(Download("https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip"),),
        subdirs=("JPEGImages/480p", "DAVIS/JPEGImages/480p"),
        frame_height=480,
        how_to_get="download DAVIS-2017-trainval-480p.zip from https://davischallenge.org (or run "
                   "`vidtok-bench data fetch davis2017_val --root DIR`) and unpack it",
        run_hint="vidtok-bench run dataset=davis2017_val dataset.root={root}/DAVIS",
    ),
}


def entry(name: str) -> CatalogEntry:
    if name not in CATALOG:
        raise UnknownNameError("downloadable dataset", name, list(CATALOG))
    return CATALOG[name]


@dataclass
class VerifyReport:
    ok: bool
    lines: list[str]


def verify(e: CatalogEntry, root: str | Path, check_sha256: bool = True) -> VerifyReport:
    """Check a downloaded set against the catalog: presence, file sizes / frame numbering, sha256 where known.

    A root that is no directory is one DatasetError, not every video reported missing under it."""
    from .hashing import sha256_file

    root = check_path(root, f"{e.name} root", DatasetError, folder=True)
    found = e.locate(root)
    lines, bad = [], 0
    for v in e.videos:
        p = found.get(v.name)
        if p is None:
            lines.append(f"MISSING {v.name}: none of {', '.join(v.files)} under {root}")
            bad += 1
            continue
        problem = _check_sequence(e, v, p) if e.layout == "sequences" else _check_file(v, p)
        if problem is None and check_sha256 and v.sha256 is not None and sha256_file(p) != v.sha256:
            problem = "sha256 differs from the published one"
        if problem:
            lines.append(f"BAD     {v.name}: {p}: {problem}")
            bad += 1
        else:
            lines.append(f"ok      {v.name}: {p.relative_to(root).as_posix()}")
    n = len(e.videos)
    known_sha = sum(v.sha256 is not None for v in e.videos)
    lines.append(f"{n - bad} of {n} videos ok under {root}"
                 + ("" if known_sha else "; no sha256 is recorded for this set, so contents were checked by size/frames only"))
    return VerifyReport(bad == 0, lines)


def _check_file(v: ExpectedVideo, p: Path) -> str | None:
    size = p.stat().st_size
    if v.size_bytes is not None and size != v.size_bytes:
        if v.frames:  # raw video: say it in frames too
            fb = v.size_bytes // v.frames
            return f"{size} bytes ({size / fb:g} frames), expected {v.size_bytes} bytes ({v.frames} frames)"
        return f"{size} bytes, expected {v.size_bytes}"
    return None


def _check_sequence(e: CatalogEntry, v: ExpectedVideo, p: Path) -> str | None:
    from .video.images import image_size, list_frames

    try:
        files = list_frames(p, ("jpg", "jpeg", "png"))
        sizes = {image_size(p, f) for f in files}
    except VideoError as exc:
        return exc.problem
    if len(sizes) > 1:
        return f"mixed frame sizes {sorted(sizes)}"
    (w, h), = sizes
    if e.frame_height is not None and h != e.frame_height:
        return f"frames are {w}x{h}, expected height {e.frame_height}"
    if v.frames is not None and len(files) != v.frames:
        return f"{len(files)} frames, expected {v.frames}"
    return None
