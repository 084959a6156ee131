"""The typed schema of pipeline.yaml.

Every section is a dataclass; `load_config` walks the YAML against the dataclasses and stops at
the first bad value with a `ConfigError` naming the key's full path (``attacks[1].eps[0]``) and
what is allowed. Nothing is run before the whole file has been checked.

Numeric bounds live in field metadata (``rng(lo, hi)``); choices are ``Literal`` types.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml

from physical.log import warn
from physical.presets import PRESETS, fill_from_preset


from physical.errors import ConfigError, UserError  # noqa: F401  (re-exported: UserError is the base of every error the user can fix)


def rng(lo=None, hi=None, *, default=dataclasses.MISSING, default_factory=dataclasses.MISSING, doc=""):
    """A dataclass field with inclusive numeric bounds (None = unbounded)."""
    meta = {"lo": lo, "hi": hi, "doc": doc}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------------
# sections


@dataclass
class RunConfig:
    name: str = "default"
    output: str = "runs"  # run directory = output/name (relative to the config file's folder)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    batch_size: int = rng(1, 4096, default=16)
    memory_gb: Optional[float] = rng(0.0, None, default=None)  # per micro-batch; null: from free memory (runtime.py)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast in attacks and classification

    def validate(self, path: str) -> None:
        n = self.name
        if not n.strip() or n in (".", "..") or any(c in n for c in "/\\\0") or n != n.strip():
            raise ConfigError(f"{path}.name: {n!r} must be one folder name (not empty, no / or \\, not . or ..); "
                              "put the folder in run.output")


@dataclass
class ImagesConfig:
    source: str = "samples"  # "samples" (scikit-image photos) or a folder: labels.csv, ImageNet val, NIPS 2017 dev set
    limit: int = rng(0, None, default=0)  # 0 = all images of the source; else a stratified sample over the classes


@dataclass
class EOTConfig:
    """Expectation over Transformation: the gradient is averaged over `samples` draws of the shared
    print-and-camera channel (capture.channel), seen as the classifier sees a cell: printed,
    photographed at `cell_px`, rectified by the align stage with a residual error of `misalign`."""

    samples: int = rng(1, 1024, default=8)  # transformations drawn per step, run as one batch
    strength: float = rng(0.0, 4.0, default=1.0)  # scales the channel's random ranges
    misalign: float = rng(0.0, 0.25, default=0.03)  # align's residual error: crop corners moved +- this x cell side
    cell_px: Optional[float] = rng(8.0, 8192.0, default=None)  # cell side in the photo at channel scale 1;
    # None: from sheet.cell_mm, the paper and capture.frame (what the simulator's photos give)


@dataclass
class AttackConfig:
    name: str = "fgsm"
    eps: list[float] = rng(0.0, 255.0, default_factory=lambda: [16.0])  # L-inf, 0..255 units
    steps: Optional[int] = rng(1, 10000, default=None)  # None: Kurakin's min(eps + 4, 1.25 eps)
    alpha: Optional[float] = rng(0.0, 255.0, default=None)  # step size, 0..255 units; None: attack's own
    target: Optional[Union[int, str]] = None  # a class index or name: targeted attack
    eot: Optional[EOTConfig] = None
    # weight of the non-printability penalty (Sharif et al. 2016) in the attack's loss: keeps the
    # perturbation inside the printer's gamut, the printable colours of capture.channel.calibration; 0: off
    printability: float = rng(0.0, 1e6, default=0.0)
    tv: float = rng(0.0, 1e9, default=0.0)  # weight of the perturbation's total variation in the loss; 0: off
    # the family's own keys (pgd: random_start, mifgsm: decay, difgsm: diversity_prob, resize_rate, tifgsm:
    # kernel_size, uap: fit, patch: fraction, square: queries, ...), declared in `Attack.params`
    family_params: dict = field(default_factory=dict)
    # the name of this entry's images in paths and tables (+ _eps<eps>); default: from name, target, eot
    label: Optional[str] = None

    def validate(self, path: str) -> None:
        if self.label is not None and (not self.label or not all(c.isalnum() or c in "-_." for c in self.label)
                                       or self.label.startswith(".")):
            raise ConfigError(f"{path}.label: {self.label!r} must be a name of letters, digits, - _ . "
                              "(it names the images' folder)")


@dataclass
class SheetConfig:
    paper: Literal["a4", "letter", "custom"] = "a4"
    width_mm: float = rng(50.0, 2000.0, default=210.0)  # only for paper: custom
    height_mm: float = rng(50.0, 2000.0, default=297.0)
    margin_mm: float = rng(0.0, 50.0, default=10.0)  # printers' non-printable border
    cell_mm: float = rng(10.0, 500.0, default=45.0)  # printed side of one cell
    marker_mm: float = rng(3.0, 50.0, default=8.0)  # side of one fiducial marker
    gap_mm: float = rng(1.0, 50.0, default=2.5)  # white space between a marker and a cell


@dataclass
class ChannelConfig:
    """Ranges of the print-and-camera channel, drawn uniformly; null: `preset`'s (physical/presets.py)."""

    preset: Literal["phone", "webcam", "hurried"] = "phone"
    rotation_deg: Optional[float] = rng(0.0, 180.0, default=None)  # in-plane rotation, +-
    tilt: Optional[float] = rng(0.0, 0.5, default=None)  # perspective strength
    scale: Optional[list[float]] = rng(0.05, 10.0, default=None)  # fraction of frame
    translate: Optional[float] = rng(0.0, 0.5, default=None)  # fraction of the frame
    blur_sigma: Optional[list[float]] = rng(0.0, 20.0, default=None)  # pixels
    noise_sigma: Optional[list[float]] = rng(0.0, 0.5, default=None)  # [0,1] units
    brightness: Optional[list[float]] = rng(-1.0, 1.0, default=None)
    contrast: Optional[list[float]] = rng(0.0, 4.0, default=None)
    white_balance: Optional[float] = rng(0.0, 0.5, default=None)  # per-channel gain, +-
    light_gradient: Optional[float] = rng(0.0, 1.0, default=None)  # vignetting / uneven light, peak fraction
    jpeg_quality: Optional[list[float]] = rng(1.0, 100.0, default=None)
    paper_white: Optional[float] = rng(0.0, 1.0, default=None)  # printer gamut: paper white ...
    ink_black: Optional[float] = rng(0.0, 1.0, default=None)  # ... and darkest ink
    print_gamma: Optional[float] = rng(0.2, 5.0, default=None)  # dot gain as a tone curve
    # the printer's halftone screen, lines per inch (the simulator's pages; null: continuous tone)
    halftone_lpi: Optional[float] = rng(50.0, 300.0, default=None)
    calibration: Optional[str] = None  # colour.json (`physical calibrate colour`): printer + ranges it measured

    def __post_init__(self):
        self.from_preset = fill_from_preset(self)  # the keys the preset filled (the report names them)


@dataclass
class CameraConfig:
    """A webcam, stream URL or video file: hints (applied where OpenCV and the driver allow; what was
    granted is logged) and how long to wait for it."""

    resolution: Optional[list[int]] = rng(16, 20000, default=None)  # requested [W, H] (webcam)
    fps: Optional[float] = rng(1.0, 1000.0, default=None)  # requested frame rate (webcam)
    autofocus: Optional[bool] = None  # webcam: true/false switches autofocus; null leaves it alone
    focus: Optional[float] = None  # webcam: manual focus in driver units (turns autofocus off)
    exposure: Optional[float] = None  # webcam: manual exposure in driver units (turns auto exposure off)
    open_timeout_s: float = rng(0.5, 600.0, default=5.0)  # a URL that does not answer fails after this
    read_timeout_s: float = rng(0.5, 600.0, default=5.0)  # a stream that sends no frame for this long has dropped
    reconnects: int = rng(0, 1000, default=3)  # a dropped stream is reopened this many times, then capture stops

    def validate(self, path: str) -> None:
        if self.resolution is not None and len(self.resolution) != 2:
            raise ConfigError(f"{path}.resolution: {self.resolution!r} must be [width, height]")


@dataclass
class GuidedConfig:
    """Guided capture from a stream (webcam, URL, video): which frames become the run's photos."""

    timeout_s: float = rng(1.0, 86400.0, default=300.0)  # stop when not every sheet is captured by then
    # variance of Laplacian of the sheet (grey, 0..255, after a 0.8 px blur); was `min_sharpness`
    min_laplacian: float = rng(0.0, None, default=40.0)
    stable_frames: int = rng(1, 100, default=3)  # consecutive frames with the sheet found and still ...
    max_motion: float = rng(0.0, 10.0, default=0.15)  # ... marker corners moving at most this x marker side per frame
    marker_fraction: float = rng(0.0, 1.0, default=1.0)  # of a sheet's markers (lattice and run tag) that must be found
    preview: Literal["auto", "on", "off"] = "auto"  # window with markers and checklist (auto: when there is a display)


@dataclass
class CaptureConfig:
    source: str = "simulate"  # simulate | folder:PATH | video:PATH | http(s)://, rtsp:// URL | webcam:N
    photos_per_sheet: int = rng(1, 100, default=1)
    dpi: Optional[float] = rng(30.0, 1200.0, default=None)  # simulate: page raster; null: as fine as the photo
    frame: Optional[list[int]] = rng(64, 20000, default=None)  # simulate: photo W, H; null: calibration's, preset's
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)  # webcam, URL, video
    guided: GuidedConfig = field(default_factory=GuidedConfig)  # frame choice from a stream

    def __post_init__(self):
        self.frame_auto, self.frame = self.frame is None, self.frame or list(PRESETS[self.channel.preset]["frame"])


@dataclass
class AlignConfig:
    min_markers: int = rng(1, 4, default=3)  # of a cell's 4 corner markers
    max_reprojection_px: float = rng(0.0, 1000.0, default=4.0)
    min_sharpness: float = rng(0.0, None, default=0.0)  # detail kept vs the digital clean image (1 = as sharp; 0 = off)
    min_inside: float = rng(0.0, 1.0, default=0.98)  # fraction of the cell inside the photo
    min_match: float = rng(0.0, 1.0, default=0.6)  # crop shows its printed image (covered, glare: lower)
    camera_calibration: Optional[str] = None  # undistort with a fitted camera (calibration/camera.json)


@dataclass
class ClassifyConfig:
    prefilter_confidence: float = rng(0.0, 1.0, default=0.8)  # Kurakin's prefiltered case


@dataclass
class ReportConfig:
    html: bool = True
    gallery: int = rng(0, 10000, default=24)  # cells shown in the HTML gallery
    # draws of capture.channel per adversarial image for its predicted survival (predict, then measure); 0: off
    predict_draws: int = rng(0, 1024, default=8)


@dataclass
class ModelConfig:
    """A model the user brings (docs/models.md): a torchvision or timm architecture with a local
    weights file, a TorchScript file, or `module: package.module:callable`; normalised inside."""
    name: str = ""  # required: the model's name in the run and the report
    arch: Optional[str] = None  # torchvision (or timm) architecture; null: the name
    weights: Optional[str] = None  # a state dict for arch (.pth, .pt, .safetensors)
    library: Literal["torchvision", "timm"] = "torchvision"  # where arch comes from (timm: pip install physical[timm])
    torchscript: Optional[str] = None  # a TorchScript file (torch.jit.save)
    module: Optional[str] = None  # "package.module:callable" returning an nn.Module (its folder on sys.path)
    input_size: Optional[int] = rng(16, 4096, default=None)  # null: the architecture's, else 224
    mean: Optional[list[float]] = rng(-10.0, 10.0, default=None)  # null: the architecture's, else ImageNet's
    std: Optional[list[float]] = rng(1e-6, 10.0, default=None)
    resize_ratio: Optional[float] = rng(0.1, 1.0, default=None)  # clean image: shorter side to input_size / ratio
    # checked with the files by physical.models.custom.register (name, one source, 3 means and stds)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    # a zoo name (`physical models`) or a mapping (ModelConfig) for a model of one's own
    models: list[Union[str, ModelConfig]] = field(default_factory=lambda: ["efficientnet_lite0"])
    images: ImagesConfig = field(default_factory=ImagesConfig)
    attacks: list[AttackConfig] = field(
        default_factory=lambda: [AttackConfig(name=n, eps=[8.0, 16.0]) for n in ("fgsm", "bim", "ill")]
    )
    sheet: SheetConfig = field(default_factory=SheetConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    extra_sections: dict = field(default_factory=dict, repr=False)  # sections added by extensions

    # where the file came from: relative paths in the file are relative to its folder
    base_dir: str = field(default=".", repr=False)

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)


# keys renamed, old -> new, per section: the old name still works and says once that it is deprecated
RENAMED: dict[type, dict[str, tuple[str, str]]] = {
    GuidedConfig: {"min_sharpness": ("min_laplacian", "the sheet's variance of Laplacian; align.min_sharpness is "
                                                       "a 0-1 ratio")},
}

# Sections that other modules add (experiments, live, ...): name -> dataclass.
SECTIONS: dict[str, type] = {}


def register_section(name: str, cls: type) -> None:
    SECTIONS[name] = cls


# ----------------------------------------------------------------------------------------------
# validation


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp)
                                                  if f.init and f.name not in _HIDDEN)
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


_HIDDEN = {"base_dir", "extra_sections", "family_params"}


def _check_range(value, meta, path):
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo or hi is not None and value > hi:
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ConfigError(f"{path}: {show(value)} is out of range; allowed {lo_s} .. {hi_s}")


def show(value) -> str:
    """A value as the YAML file says it (null, true, false), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def coerce(value, tp, path, meta):
    origin = typing.get_origin(tp)
    if value is None and origin not in (Union, types.UnionType) and not dataclasses.is_dataclass(tp):
        raise ConfigError(f"{path}: null is not allowed; expected {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, path, meta)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, str) and value.lower() in allowed:
            return value.lower()
        raise ConfigError(f"{path}: {show(value)} is not allowed; allowed: {', '.join(map(str, allowed))}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]  # a single value stands for a list of one
        return [coerce(v, item_tp, f"{path}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {show(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: {show(value)} is not a boolean (true/false)")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{path}: {show(value)} is not an integer")
        _check_range(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: {show(value)} is not a number")
        value = float(value)
        if value != value:
            raise ConfigError(f"{path}: NaN is not allowed")
        _check_range(value, meta, path)
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {show(value)} is not a string")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")


def _coerce_union(value, tp, path, meta):
    args = typing.get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{path}: null is not allowed; expected {_type_name(tp)}")
    errors = []
    # own type first: typing caches Union[int, str] and Union[str, int] as one object (either order)
    for a in sorted((a for a in args if a is not type(None)), key=lambda a: a is not type(value)):
        try:
            return coerce(value, a, path, meta)
        except ConfigError as e:
            if isinstance(value, dict) and dataclasses.is_dataclass(a):
                raise  # a mapping is the dataclass's: its own error names the bad key
            errors.append(e)
    for err in errors:  # a range error is more telling than a type error
        if "out of range" in str(err):
            raise err
    raise ConfigError(f"{path}: {show(value)} is not {_type_name(tp)}")


def build(cls, data, path=""):
    """Build dataclass `cls` from a mapping, naming the full key path of any bad value."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<top>'}: expected {_type_name(cls)}, got {show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in _HIDDEN}
    extensions = SECTIONS if cls is Config else {}
    kwargs, extra = {}, {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key in RENAMED.get(cls, {}) and key not in fields:
            new, why = RENAMED[cls][key]
            if new in data:
                raise ConfigError(f"{sub}: the old name of {path}.{new}; give only {new}")
            warn(f"config: {sub} is deprecated; use {path}.{new} ({why})")
            key, sub = new, f"{path}.{new}"
        if key in fields:
            kwargs[key] = coerce(value, hints[key], sub, fields[key].metadata)
        elif key in extensions:
            extra[key] = build(extensions[key], value, sub)
        elif cls is AttackConfig:  # checked against the family's declared parameters (attacks.check_config)
            extra[key] = value
        else:
            allowed = sorted(list(fields) + list(extensions))
            raise ConfigError(f"{sub}: unknown key; allowed keys here: {', '.join(allowed)}")
    obj = cls(**kwargs)
    if cls is AttackConfig:
        obj.family_params = extra
    if cls is Config:
        obj.extra_sections = {name: extra.get(name) or build(sc, {}, name) for name, sc in SECTIONS.items()}
    if hasattr(obj, "validate"):
        obj.validate(path)
    return obj


def set_override(data: dict, assignment: str) -> None:
    """Apply one ``key.path=value`` (value parsed as YAML) to the raw mapping, in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        problem = str(getattr(e, "problem", "") or e).splitlines()[0]
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({problem}); quote it, e.g. "
                          f"{key}='\"...\"'") from None
    node = data
    parts = _split_path(key.strip())
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(f"--set {key}: index {part} does not exist")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not inside a mapping")
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"--set {key}: index {last} does not exist")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {last!r} is not inside a mapping")
        node[last] = value


def _split_path(key: str) -> list:
    out = []
    for part in key.replace("]", "").replace("[", ".").split("."):
        if part == "":
            continue
        out.append(int(part) if part.isdigit() else part)
    if not out:
        raise ConfigError("--set: empty key")
    return out


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first on line "
                                  f"{seen[key]}); YAML would keep the last silently: keep one")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_raw(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeys) or {}
    except ConfigError as e:
        raise ConfigError(f"{p} {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          "save it as UTF-8") from None
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"{p}: not valid YAML: {msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return data


def to_dict(cfg) -> dict:
    """The full config (defaults filled in) as plain data, for the run directory."""
    d = dataclasses.asdict(cfg)
    d.pop("base_dir", None)
    extra = d.pop("extra_sections", {}) or {}
    d.update(extra)
    for a in d.get("attacks") or []:  # an attack family's own keys are written as the user wrote them
        a.update(a.pop("family_params", None) or {})
    return d
