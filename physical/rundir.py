"""The run directory: the only thing stages share.

Layout of one run (``<output>/<name>/``)::

    config.yaml        the config as run (defaults filled in)
    manifest.json      run id, versions, seed, device, stage status (atomic)
    generate/          clean and adversarial images (PNG) + index.json
    print/             sheets as PDF + layout.json (every cell's position on its sheet)
    capture/photos/    photos of the printed sheets (any names)
    align/crops/       rectified crops + crops.json (quality figures per crop)
    classify/          predictions.json
    experiments/       transformations, defences, transfer, generalisation (JSON) + cache/
    report/            report.json, report.html, tables (CSV)

Every write goes to a temporary file in the same folder (``.partial-*``) and is renamed into place,
so an interrupted run never leaves a half-written file that a later stage would trust; the next run
removes the temporary files an interrupted one left. A stage is marked done in the manifest only
after all its outputs are written, with the digest of every output file (see physical.runs.runner).
One process writes a run directory at a time: ``run.lock`` names the holder (`RunLock`).

``PHYSICAL_FAULT_AT=N`` (tests) makes the process SIGKILL itself at its N-th durable write, after the
temporary file is written and before it is renamed into place (``PHYSICAL_FAULT_AT=PATH`` at the write
of a file whose path ends with PATH, ``PATH+K`` at the K-th write after that one);
``PHYSICAL_FAULT_LOG=FILE`` appends the path of every durable write to FILE.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import re
import signal
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataclasses import dataclass

import cv2
import numpy as np
import yaml
from PIL import Image, ImageOps, UnidentifiedImageError

from physical.errors import UserError



@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, declared once: the runner, the run directory, torchrun's sharding,
    the command line and ARCHITECTURE.md all read this table.

    The function ``module:function`` is ``(run, cfg[, device]) -> summary``; it writes under
    ``<run>/<name>/`` only (``outputs``), with this module's atomic writers. It is looked up when the
    stage runs, so a test or a plug-in that puts another function in its module's place runs that one.
    """
    name: str
    module: str
    function: str
    sections: tuple[str, ...]  # the config sections it reads: a change there makes it stale
    sharded: bool = False  # every rank of a torchrun job runs it on its share of the images
    takes_device: bool = False  # called with the run's device as a third argument

    @property
    def outputs(self) -> str:
        return self.name


PIPELINE = (
    Stage("generate", "physical.stages.generate", "generate_stage",
          ("models", "images", "attacks", "run.seed", "run.precision"), sharded=True, takes_device=True),
    Stage("print", "physical.stages.printing", "print_stage", ("sheet",)),
    Stage("capture", "physical.stages.capture", "capture_stage", ("capture",)),
    Stage("align", "physical.stages.align", "align_stage", ("align",)),
    Stage("classify", "physical.stages.classify", "classify_stage", ("classify", "run.precision"),
          sharded=True, takes_device=True),
    Stage("experiments", "physical.stages.experiments", "experiments_stage", ("experiments",),
          sharded=True, takes_device=True),
    Stage("report", "physical.stages.report", "report_stage", ("report",), takes_device=True),
)
STAGES = [s.name for s in PIPELINE]
STAGE = {s.name: s for s in PIPELINE}
TEMP_PREFIX = ".partial-"


class CorruptFile(UserError, ValueError):
    """A run file that cannot be read (not JSON, not UTF-8); the message names it."""


# ----------------------------------------------------------------------------------------------
# atomic writes


_UMASK = os.umask(0)
os.umask(_UMASK)


_DISCARD = {"on": False}  # a rank other than 0 running a stage whose files rank 0 writes (physical.runs.distributed)


@contextmanager
def discarding_writes():
    """Writes inside the block are made and thrown away, never renamed into place."""
    was, _DISCARD["on"] = _DISCARD["on"], True
    try:
        yield
    finally:
        _DISCARD["on"] = was


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); a run's files are ordinary files
    try:
        yield Path(tmp)
        if _DISCARD["on"]:
            return
        _fault_point(path)
        os.replace(tmp, path)
    except OSError as e:
        # a write into an open file (a full disk) does not say which file; a copy names its source
        # and the temporary file: the file being written is `path`
        if e.filename is None or e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_WRITES: dict[str, Any] = {"n": 0, "after": None}


def _fault_point(path: Path) -> None:
    """Fault injection for tests (see the module docstring); free when the variables are unset."""
    log, at = os.environ.get("PHYSICAL_FAULT_LOG"), os.environ.get("PHYSICAL_FAULT_AT")
    if not (log or at):
        return
    _WRITES["n"] += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{path}\n")
    if not at:
        return
    if at.isdigit():
        hit = _WRITES["n"] == int(at)
    else:  # FILE or FILE+K: the write of a path ending with FILE, or the K-th write after it
        name, _, k = at.partition("+")
        if _WRITES["after"] is None and str(path).endswith(name):
            _WRITES["after"] = _WRITES["n"]
        hit = _WRITES["after"] is not None and _WRITES["n"] == _WRITES["after"] + int(k or 0)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def remove_temp_files(*folders: Path) -> list[Path]:
    """Remove the temporary files interrupted writes left in `folders` (recursively); returns them."""
    gone = []
    for folder in folders:
        if Path(folder).is_dir():
            for p in Path(folder).rglob(f"{TEMP_PREFIX}*"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    gone.append(p)
    return gone


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (16 hex digits: enough to tell versions of one file apart)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def digest(obj: Any) -> str:
    """sha256 of plain data (JSON with sorted keys), 16 hex digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=1, default=_json_default, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file; CorruptFile naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFile(f"{path}: not a valid JSON file ({e})") from None


def write_image(path: str | Path, rgb: np.ndarray, quality: int | None = None) -> Path:
    """Write an 8-bit RGB (or grey) image; the format follows the file's suffix."""
    path = Path(path)
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if quality is not None else []
    ok, buf = cv2.imencode(path.suffix, img, params)
    if not ok:
        raise OSError(f"{path}: could not encode image")
    return write_bytes(path, buf.tobytes())


MAX_PHOTO_PIXELS = 250_000_000  # the largest photo read (a 200-megapixel phone camera's, with room)
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"avif")
NO_HEIF_PLUGIN = ("a HEIC/HEIF photo, and pillow-heif, which reads them, is not installed: pip install pillow-heif "
                  "(or have the phone save JPEG)")


def is_heif(path: str | Path) -> bool:
    """A HEIC/HEIF (or AVIF) file, by its first bytes (or its suffix, for a file that cannot be read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return Path(path).suffix.lower() in (".heic", ".heif")
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def heif_plugin() -> bool:
    """Whether HEIC/HEIF photos can be read here (pillow-heif installed; registered with Pillow)."""
    try:
        # deferred: optional HEIC plugin: a missing one is reported, not fatal
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _to_8bit(a: np.ndarray) -> np.ndarray:
    """An image array of any depth as uint8: 16-bit (and 32-bit integer holding 16-bit) values
    scaled from 0..65535, floats from 0..1."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(a.astype(np.float32) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    return a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a[:, :, :1], 3, axis=2)


def _read_cv2(path: Path) -> np.ndarray | None:
    """OpenCV's decoding (any depth; EXIF orientation applied), as 8-bit RGB; None if it cannot."""
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    except cv2.error:  # a header past OpenCV's limits (2**30 pixels, CV_IO_MAX_IMAGE_PIXELS) raises, not None
        img = None
    if img is None:
        return None
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(_rgb(_to_8bit(img)))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as 8-bit RGB, the way a camera or phone wrote it: JPEG, PNG, TIFF, BMP, WebP,
    HEIC/HEIF (with pillow-heif), its EXIF orientation applied, 16-bit images scaled to 8 bits (not
    clipped: a 16-bit grey PNG is not all white), up to MAX_PHOTO_PIXELS (past Pillow's
    decompression-bomb limit OpenCV decodes it). Pillow decodes first because it refuses truncated
    files (OpenCV fills them in with grey). ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'is a folder' if path.is_dir() else 'does not exist'}")
    if is_heif(path) and not heif_plugin():
        raise ValueError(f"{path}: {NO_HEIF_PLUGIN}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                ImageOps.exif_transpose(im, in_place=True)  # no copy of a 12 MP photo when it is upright
                if im.mode in ("RGB", "L", "RGBA", "P", "CMYK", "YCbCr", "LA", "1"):
                    return np.array(im if im.mode == "RGB" else im.convert("RGB"))
                return np.ascontiguousarray(_rgb(_to_8bit(np.array(im))))  # I;16, I, F: deeper than 8 bits
    except Image.DecompressionBombError as e:
        img = _read_cv2(path)  # OpenCV refuses images past 2**30 pixels itself
        if img is None:
            size = re.search(r"\((\d+) pixels\)", str(e))
            claims = f"its header claims {int(size.group(1)) / 1e6:,.0f} megapixels" if size else "too large"
            raise ValueError(f"{path}: {claims}, more than the {MAX_PHOTO_PIXELS / 1e6:g} megapixels read "
                             "(a damaged file, or not a photo): not decoded") from None
        if img.shape[0] * img.shape[1] > MAX_PHOTO_PIXELS:
            raise ValueError(f"{path}: {img.shape[1]} x {img.shape[0]} px, more than the "
                             f"{MAX_PHOTO_PIXELS / 1e6:g} megapixels read") from None
        return img
    except UnidentifiedImageError:
        img = _read_cv2(path)  # e.g. a 16-bit colour TIFF Pillow does not read
        if img is None:
            raise ValueError(f"{path}: not an image file") from None
        return img
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: corrupt or truncated image ({e})") from None


# ----------------------------------------------------------------------------------------------
# the run directory


def versions() -> dict:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for mod in ("physical", "torch", "torchvision", "cv2", "numpy", "reportlab", "kornia"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # pragma: no cover - a missing optional package
            out[mod] = None
    return out


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -------------------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def photos_dir(self) -> Path:
        d = self.root / "capture" / "photos"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    # manifest ----------------------------------------------------------------------------
    def manifest(self) -> dict:
        if not self.manifest_path.is_file():
            return {}
        return read_json(self.manifest_path)

    def _update(self, fn) -> dict:
        m = self.manifest()
        fn(m)
        write_json(self.manifest_path, m)
        return m

    def init(self, config_dict: dict, seed: int, device: str, base_dir: str | Path | None = None) -> dict:
        """Create or reopen the run; the run id stays the same across resumes. `base_dir`: the folder
        the config's relative paths are relative to (its YAML's), recorded for `config_dir`."""
        self.root.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config_dict, sort_keys=False)
        cfg_path = self.root / "config.yaml"
        if not cfg_path.is_file() or cfg_path.read_text() != text:
            write_text(cfg_path, text)
        digest = hashlib.sha256(json.dumps(config_dict, sort_keys=True, default=str).encode()).hexdigest()

        def fn(m):
            if "run_id" not in m:
                m["run_id"] = f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:6]}"
                m["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                m["stages"] = {}
            m["name"] = config_dict.get("run", {}).get("name")
            m["seed"] = seed
            m["device"] = device
            m["config_sha256"] = digest
            m["versions"] = versions()
            if base_dir is not None:
                m["base_dir"] = str(Path(base_dir).resolve())

        return self._update(fn)

    def config_dir(self, output: str = "runs") -> Path:
        """The folder the run's config.yaml paths are relative to: as recorded at init; for a run
        made before that was recorded, the folder that `run.output` (relative) was taken from."""
        m = self.manifest() if self.manifest_path.is_file() else {}
        if m.get("base_dir"):
            return Path(m["base_dir"])
        out = Path(output)
        return Path.cwd() if out.is_absolute() else self.root.resolve().parents[len(out.parts)]

    @property
    def run_id(self) -> str:
        return self.manifest()["run_id"]

    def status(self, stage: str) -> dict:
        return self.manifest().get("stages", {}).get(stage, {})

    def is_done(self, stage: str) -> bool:
        return self.status(stage).get("state") == "done"

    def mark(self, stage: str, state: str, **info) -> None:
        def fn(m):
            s = m.setdefault("stages", {}).setdefault(stage, {})
            s["state"] = state
            s["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            s.update(info)

        self._update(fn)

    def record(self, stage: str, entry: dict) -> None:
        """Replace a stage's status with `entry` (a finished stage: see physical.runs.runner) and clear its attempt."""
        def fn(m):
            m.setdefault("stages", {})[stage] = {**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            m.get("attempts", {}).pop(stage, None)

        self._update(fn)

    def attempt(self, stage: str, state: str, **info) -> None:
        """Record a new attempt at a finished stage (running, failed) without touching its status."""
        def fn(m):
            m.setdefault("attempts", {})[stage] = {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}

        self._update(fn)
