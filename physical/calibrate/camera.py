"""Camera calibration from photos (or a stream) of the ChArUco board: intrinsics and distortion.

Per frame: ``cv2.aruco.CharucoDetector.detectBoard`` finds the board's markers and interpolates its
chessboard corners; ``CharucoBoard.matchImagePoints`` pairs them with the board's millimetres.
A view is used when it has at least MIN_CORNERS corners that are not on one line. The views go
into ``cv2.calibrateCamera`` (OpenCV 5 has no ``calibrateCameraCharuco``); views whose own
reprojection error is far above the others' (a blurred or mis-detected frame) are dropped once and
the fit repeated. Distortion model: k1, k2, p1, p2 (k3 with ``k3=True``: it needs many views
reaching the frame's corners, and over-fits otherwise).

Before a view is used, its markers are checked against the board's layout: markers whose ids the
board does not have, or that do not sit where the board puts them, mean the photo shows another
board (another size or layout), which is reported as such instead of being fitted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

import cv2
import numpy as np

from physical.sheets.markers import detector_parameters
from physical.channel.files import CAMERA_KIND, VERSION, CalibrationError
from physical.calibrate.targets import DICTIONARY, BoardSpec

MIN_CORNERS = 6  # ChArUco corners in one view
MIN_VIEWS = 10
OUTLIER_FACTOR = 3.0  # views with RMS > this x the median are dropped (once)
MIN_INLIER_FRACTION = 0.8  # of a view's markers on the board's layout


@dataclass
class View:
    name: str
    size: tuple[int, int]  # (w, h)
    corners: Optional[np.ndarray] = None  # (n, 2) px
    ids: Optional[np.ndarray] = None
    obj: Optional[np.ndarray] = None  # (n, 3) board mm
    reason: str = ""  # why it is not used; "" = used

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass
class CameraFit:
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    image_size: tuple[int, int]
    rms_px: float
    views: list[View]
    per_view_rms: dict[str, float]
    dropped: dict[str, str] = field(default_factory=dict)

    def document(self, spec: BoardSpec) -> dict:
        k = self.camera_matrix
        used = [v for v in self.views if v.ok]
        return {
            "kind": CAMERA_KIND, "version": VERSION,
            "camera_matrix": np.round(k, 6).tolist(),
            "dist_coeffs": np.round(self.dist_coeffs, 8).tolist(),
            "image_size": list(self.image_size),
            "rms_px": round(self.rms_px, 4),
            "views": len(used),
            "frames": len(self.views),
            "fx": round(float(k[0, 0]), 3), "fy": round(float(k[1, 1]), 3),
            "cx": round(float(k[0, 2]), 3), "cy": round(float(k[1, 2]), 3),
            "board": spec.to_dict(),
            "per_view_rms_px": {n: round(v, 4) for n, v in self.per_view_rms.items()},
            "rejected": {v.name: v.reason for v in self.views if not v.ok},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


def _detector(spec: BoardSpec) -> cv2.aruco.CharucoDetector:
    p = detector_parameters()
    p.minMarkerPerimeterRate = 0.02
    cp = cv2.aruco.CharucoParameters()
    cp.minMarkers = 1
    return cv2.aruco.CharucoDetector(spec.board(), cp, p)


def _layout_check(spec: BoardSpec, marker_corners, marker_ids) -> str:
    """'' when the detected markers fit the board's layout; otherwise what is wrong."""
    ids = np.asarray(marker_ids).ravel()
    foreign = sorted(int(i) for i in ids if i >= spec.markers)
    if foreign and len(foreign) >= max(2, len(ids) // 3):
        if all(200 <= i < 210 for i in foreign):
            return "this is the colour chart, not the ChArUco board"
        return (f"markers with ids beyond {spec.markers - 1} are not on a {spec.describe()} board: the photo shows "
                "a bigger or another board; give its layout with --board COLSxROWS (squares across x down)")
    own = [(i, c) for i, c in zip(ids, marker_corners, strict=False) if i < spec.markers]
    if len(own) < 3:
        return ""  # too few to judge; the corner count decides
    obj = spec.board().getObjPoints()
    src = np.concatenate([np.asarray(obj[int(i)])[:, :2] for i, _ in own]).astype(np.float64)
    dst = np.concatenate([np.asarray(c).reshape(4, 2) for _, c in own]).astype(np.float64)
    side = float(np.median([np.linalg.norm(np.asarray(c).reshape(4, 2)[0] - np.asarray(c).reshape(4, 2)[2])
                            for _, c in own]))
    # a homography is only an approximation under lens distortion: a generous tolerance
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, max(3.0, 0.25 * side))
    if h is None:
        return (f"its markers are not where a {spec.describe()} board puts them: the photo shows a board "
                "of another size or layout; give it with --board COLSxROWS (squares across x down)")
    inl = mask.ravel().reshape(-1, 4).all(axis=1)
    if inl.mean() < MIN_INLIER_FRACTION:
        return (f"its markers are not where a {spec.describe()} board puts them: the photo shows a board "
                "of another size or layout; give it with --board COLSxROWS (squares across x down)")
    return ""


def detect_view(image: np.ndarray, spec: BoardSpec, name: str = "frame") -> View:
    """The board's corners in one photo (RGB or grey uint8); `reason` says why it cannot be used."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    view = View(name, (grey.shape[1], grey.shape[0]))
    corners, ids, m_corners, m_ids = _detector(spec).detectBoard(grey)
    if m_ids is None or len(m_ids) == 0:
        view.reason = f"no {DICTIONARY} markers found (not the ChArUco board, or too blurred / small)"
        return view
    why = _layout_check(spec, m_corners, m_ids)
    if why:
        view.reason = why
        return view
    n = 0 if ids is None else len(ids)
    if n < MIN_CORNERS:
        view.reason = f"{n} board corners found, at least {MIN_CORNERS} needed (board too small, blurred or cut off)"
        return view
    if spec.board().checkCharucoCornersCollinear(ids):
        view.reason = "the board corners found lie on one line"
        return view
    # cv2's stubs type the detected corners as one array; the call takes the sequence detectCharucoBoard gives
    obj, img = spec.board().matchImagePoints(corners, ids)  # type: ignore[call-overload]
    view.corners = np.asarray(img, np.float64).reshape(-1, 2)
    view.obj = np.asarray(obj, np.float64).reshape(-1, 3)
    view.ids = np.asarray(ids).ravel()
    return view


def _points(view: View) -> tuple[np.ndarray, np.ndarray]:
    """(board mm, photo px) of a view the board was found in."""
    assert view.obj is not None and view.corners is not None, f"{view.name}: no board"
    return view.obj, view.corners


def _spread(view: View, kept: list[View], min_move: float) -> bool:
    """Whether a stream frame's board is different enough from the kept ones (centre or size moved)."""
    corners = _points(view)[1]
    c = corners.mean(0)
    area = float(np.ptp(corners[:, 0]) * np.ptp(corners[:, 1]))
    d = max(view.size)
    for k in kept:
        kp = _points(k)[1]
        kc = kp.mean(0)
        ka = float(np.ptp(kp[:, 0]) * np.ptp(kp[:, 1]))
        if np.linalg.norm(c - kc) < min_move * d and abs(area - ka) < 0.2 * max(area, ka):
            return False
    return True


def collect_views(frames: Iterable[tuple[str, np.ndarray]], spec: BoardSpec, max_views: int = 60,
                  stream: bool = False) -> list[View]:
    """Detect the board in every frame; from a stream keep at most `max_views` distinct poses."""
    views: list[View] = []
    kept: list[View] = []
    for name, image in frames:
        v = detect_view(image, spec, name)
        if stream and v.ok and not _spread(v, kept, 0.05):
            continue  # the same pose again: a stream dwells on one view for many frames
        views.append(v)
        if v.ok:
            kept.append(v)
            if stream and len(kept) >= max_views:
                break
    return views


def fit_camera(views: list[View], spec: BoardSpec, min_views: int = MIN_VIEWS, k3: bool = False) -> CameraFit:
    """Intrinsics and distortion from the usable views; CalibrationError saying what is missing."""
    if not views:
        raise CalibrationError("no photos of the ChArUco board were given")
    used = [v for v in views if v.ok]
    sizes = sorted({v.size for v in used})
    if len(sizes) > 1:
        counts = {s: sum(v.size == s for v in used) for s in sizes}
        main = max(counts, key=lambda s: counts[s])
        for v in used:
            if v.size != main:
                v.reason = f"size {v.size[0]}x{v.size[1]} differs from the other photos' {main[0]}x{main[1]}"
        used = [v for v in views if v.ok]
    if len(used) < min_views:
        noun = "frame" if all(v.name.startswith("frame") for v in views) else "photo"
        rejected = [v for v in views if not v.ok]
        why = ""
        if rejected:
            reasons: dict[str, list[str]] = {}
            for v in rejected:
                reasons.setdefault(v.reason, []).append(v.name)
            why = " (" + "; ".join(f"{len(n)} x {r}: {', '.join(n[:3])}{' ...' if len(n) > 3 else ''}"
                                   for r, n in reasons.items()) + ")"
        raise CalibrationError(
            f"{len(used)} usable view{'s' if len(used) != 1 else ''} of the ChArUco board in {len(views)} "
            f"{noun}{'s' if len(views) != 1 else ''}{why}; at least {min_views} are needed: take "
            f"{min_views - len(used)} more photo{'s' if min_views - len(used) != 1 else ''} of the board "
            "from different angles and distances, with the board in every part of the frame")
    size = used[0].size
    flags = 0 if k3 else cv2.CALIB_FIX_K3
    dropped: dict[str, str] = {}
    for attempt in range(2):
        obj = [_points(v)[0].astype(np.float32) for v in used]
        img = [_points(v)[1].astype(np.float32) for v in used]
        try:
            rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(
                obj, img, size, None, None, flags=flags,
                criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10))
        except cv2.error as e:
            raise CalibrationError(f"OpenCV could not fit the camera from {len(used)} views ({e.err}); take "
                                   "photos from more varied angles (tilted 20-45 degrees, not all face-on)") from None
        per_view = {}
        for v, r, t in zip(used, rvecs, tvecs, strict=False):
            v_obj, v_px = _points(v)
            proj, _ = cv2.projectPoints(v_obj, r, t, k, dist)
            per_view[v.name] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - v_px) ** 2, 1))))
        med = float(np.median(list(per_view.values())))
        bad = [v for v in used if per_view[v.name] > max(OUTLIER_FACTOR * med, 1.0)]
        if attempt == 1 or not bad or len(used) - len(bad) < min_views:
            break
        for v in bad:
            v.reason = f"reprojection {per_view[v.name]:.2f} px, over {OUTLIER_FACTOR:g} x the median {med:.2f} px"
            dropped[v.name] = v.reason
        used = [v for v in used if v.ok]
    return CameraFit(k, dist.ravel(), size, float(rms), views, per_view, dropped)
