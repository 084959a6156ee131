"""Synthetic photos with known ground truth, for tests and for trying the calibration without a camera.

- :func:`render_board_views`: a pinhole camera with known intrinsics and distortion looks at a
  flat ChArUco board from many poses. Every output pixel is traced back exactly: undistort it
  (OpenCV's iterative inverse of the distortion model), intersect its ray with the board plane,
  sample the board image there.
- :func:`simulate_target_photos`: a target PDF (the colour chart) printed and photographed by the
  simulator's :class:`physical.channel.core.Channel`, as ``physical.sim.print_camera`` does with sheets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from physical.channel.core import params_at
from physical.rundir import write_image
from physical.sim.print_camera import desk, printed_pages
from physical.calibrate.targets import BoardSpec, board_image


def look_at_pose(rng: np.random.Generator, spec: BoardSpec, k: np.ndarray, size: tuple[int, int],
                 fill: tuple[float, float] = (0.5, 0.95), max_angle_deg: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """A random board pose (rvec, tvec, board mm -> camera mm) filling `fill` of the frame's width,
    tilted up to `max_angle_deg`, placed anywhere in the frame (so the frame's corners are covered)."""
    w, h = size
    bw, bh = spec.cols * spec.square_mm, spec.rows * spec.square_mm
    ax, ay = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg, 2))
    az = np.deg2rad(rng.uniform(-25, 25))
    rot, _ = cv2.Rodrigues(np.array([ax, ay, az]))
    f = k[0, 0]
    span = rng.uniform(*fill) * min(w, h)
    z = f * max(bw, bh) / span
    # image point the board's centre goes to: anywhere, so corners of the frame are reached
    u = rng.uniform(0.3, 0.7) * w
    v = rng.uniform(0.3, 0.7) * h
    centre_cam = np.array([(u - k[0, 2]) / f * z, (v - k[1, 2]) / k[1, 1] * z, z])
    t = centre_cam - rot @ np.array([bw / 2, bh / 2, 0.0])
    rvec, _ = cv2.Rodrigues(rot)
    return rvec.ravel(), t


def pixel_rays(k: np.ndarray, dist: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h*w, 2): the undistorted normalised coordinates of every pixel centre (the same for all poses)."""
    w, h = size
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = np.stack([uu.ravel(), vv.ravel()], 1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 40, 1e-10)
    return cv2.undistortPoints(pts, k, dist, criteria=crit).reshape(-1, 2)


def render_board(spec: BoardSpec, k: np.ndarray, dist: np.ndarray, rvec, tvec, size: tuple[int, int],
                 px_per_mm: float = 4.0, background: int = 110, board: Optional[np.ndarray] = None,
                 rays: Optional[np.ndarray] = None) -> np.ndarray:
    """One grey uint8 photo of the board (with a white border of one square) seen by the camera."""
    img = board if board is not None else board_image(spec, px_per_mm)
    pad = int(round(spec.square_mm * px_per_mm))
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    w, h = size
    norm = rays if rays is not None else pixel_rays(k, dist, size)
    rot, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    hom = np.column_stack([rot[:, 0], rot[:, 1], np.asarray(tvec, np.float64).ravel()])  # board (X, Y, 1) -> ray
    inv = np.linalg.inv(hom)
    q = np.column_stack([norm, np.ones(len(norm))]) @ inv.T
    with np.errstate(divide="ignore", invalid="ignore"):
        bx, by = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
    behind = q[:, 2] <= 0
    mx = (bx * px_per_mm - 0.5 + pad).astype(np.float32)
    my = (by * px_per_mm - 0.5 + pad).astype(np.float32)
    mx[behind] = -1e6
    out = cv2.remap(img, mx.reshape(h, w), my.reshape(h, w), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    return out


def render_board_views(spec: BoardSpec, k: np.ndarray, dist: np.ndarray, size: tuple[int, int], n: int,
                       seed: int = 0, blur: float = 0.6, noise: float = 2.0, px_per_mm: float = 4.0,
                       **pose_kw) -> list[tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """`n` photos (name, grey uint8, (rvec, tvec)) of the board from random poses, slightly blurred
    and noisy; poses whose board corners leave the frame entirely are drawn again."""
    rng = np.random.default_rng(seed)
    board = board_image(spec, px_per_mm)
    rays = pixel_rays(k, dist, size)
    out: list = []
    corners3 = np.asarray(spec.board().getChessboardCorners()).astype(np.float64)
    while len(out) < n:
        rvec, tvec = look_at_pose(rng, spec, k, size, **pose_kw)
        proj, _ = cv2.projectPoints(corners3, rvec, tvec, k, dist)
        p = proj.reshape(-1, 2)
        inside = ((p[:, 0] > 5) & (p[:, 0] < size[0] - 5) & (p[:, 1] > 5) & (p[:, 1] < size[1] - 5)).mean()
        if inside < 0.6:
            continue
        img: np.ndarray = render_board(spec, k, dist, rvec, tvec, size, px_per_mm, board=board, rays=rays).astype(
            np.float32)
        if blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        img += rng.normal(0, noise, img.shape).astype(np.float32)
        out.append((f"view{len(out):02d}", np.clip(img + 0.5, 0, 255).astype(np.uint8), (rvec, tvec)))
    return out


def simulate_target_photos(pdf: str | Path, folder: str | Path, channel, n: int, seed: int = 0,
                           dpi: float = 100.0, frame: tuple[int, int] = (1200, 900),
                           prefix: str = "chart") -> list[Path]:
    """Photograph page 1 of `pdf` `n` times through `channel` (a physical.channel.core.Channel) into
    `folder` as JPEGs at the sampled quality, the way the simulator photographs sheets."""
    page = next(printed_pages(pdf, dpi)).page
    x = torch.from_numpy(page).permute(2, 0, 1)[None].float().div_(255)
    gen = torch.Generator().manual_seed(int(seed))
    params = channel.sample(n, generator=gen)
    paths = []
    for i in range(n):
        p = params_at(params, i)
        with torch.no_grad():
            out = channel(x, p, out_size=frame, background=desk(frame, gen), jpeg=False)
        photo = out.images[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        q = int(round(float(p["jpeg_quality"][0])))
        paths.append(write_image(Path(folder) / f"{prefix}{i:02d}.jpg", photo, quality=q))
    return paths
