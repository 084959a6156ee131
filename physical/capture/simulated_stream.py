"""A simulated camera filming printed sheets: a frame source for dry runs, demos and tests.

Each sheet of a run's PDF is seen from `poses` viewpoints. A viewpoint is one draw of the
print-and-camera channel (:class:`physical.channel.core.Channel`: printer, rotation, tilt, scale, light,
blur, sensor noise) rendered once; the frames around it are made from that rendering the way a
hand-held camera makes them, cheaply enough for a 30 fps stream:

- ``move``     the camera travels from the previous viewpoint to this one: the previous rendering
               warped by the interpolated camera motion (a homography: the scene is a plane) and
               smeared along the motion (motion blur);
- ``defocus``  the camera arrives and hunts for focus: Gaussian blur of `defocus_sigma` px;
- ``hold``     the camera is still and sharp;
- ``soft``     the camera is still but out of focus (``soft_sigma`` px: the markers are found, the
               sheet is not sharp): the first ``soft_poses`` viewpoints of each sheet are all soft.

Every frame gets fresh sensor noise, so no two frames are identical. ``truth[k]`` says what frame k
is ({sheet, pose, kind}); tests use it to check which frames guided capture picks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from physical import runfiles
from physical.channel.build import build_channel
from physical.config import Config
from physical.rundir import RunDir
from physical.sim.print_camera import desk, printed_pages
from physical.capture.frames import FrameSource, Pacer

MM_PER_INCH = 25.4


class SimulatedSource(FrameSource):
    def __init__(self, pages: list[np.ndarray], channel_cfg=None, frame: tuple[int, int] = (960, 720), *,
                 seed: int = 0, poses: int = 2, move: int = 3, defocus: int = 2, hold: int = 5,
                 defocus_sigma: float = 2.5, soft_poses: int = 0, soft_sigma: float = 1.2,
                 frame_noise: float = 1.5, fps: float = 15.0, realtime: bool = False,
                 loop: bool = False, name: str = "simulated camera"):
        if not pages:
            raise ValueError("a simulated camera needs at least one sheet")
        self.pages = pages
        self.channel_cfg = channel_cfg
        self.frame = (int(frame[0]), int(frame[1]))
        self.seed = int(seed)
        self.defocus_sigma = float(defocus_sigma)
        self.soft_sigma = float(soft_sigma)
        self.frame_noise = float(frame_noise)
        self.fps = float(fps)
        self.live = bool(realtime)
        self.loop = loop
        self.name = name
        self._move = int(move)
        self.truth: list[dict] = []
        self._segments: list[tuple] = []  # (kind, pose, from_pose, t)
        poses_list = [(s, p) for s in range(len(pages)) for p in range(max(1, poses))]
        prev = None
        for k, (_sheet, p) in enumerate(poses_list):
            if prev is not None:
                for j in range(move):
                    self._segments.append(("move", k, prev, (j + 1) / (move + 1)))
            still = "soft" if p < soft_poses else "hold"
            self._segments += [("defocus", k, None, 0.0)] * defocus + [(still, k, None, 0.0)] * hold
            prev = k
        self._poses = poses_list
        self.truth = [{"sheet": poses_list[k][0], "pose": k, "kind": kind} for kind, k, _, _ in self._segments]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # pose -> (image, sheet corners px)
        self._next = 0
        self._pacer = Pacer(fps if realtime else None)
        self._rng = np.random.default_rng(self.seed + 1)

    def __len__(self) -> int:
        return len(self._segments)

    @classmethod
    def for_run(cls, run, cfg=None, *, frame: Optional[tuple[int, int]] = None, realtime: bool = False, **kw):
        """Film the printed sheets of a run (its print/sheets.pdf) through cfg.capture.channel."""
        run = run if isinstance(run, RunDir) else RunDir(Path(run))
        cfg = cfg or Config()
        printed = runfiles.load_layout(run, "run the print stage first")
        pdf = run.root / printed.pdf
        if frame is None:
            res = cfg.capture.camera.resolution
            frame = tuple(res) if res else (1280, 720)
        page_h_in = printed.layout.page_h / MM_PER_INCH
        dpi = float(min(cfg.capture.dpi or 600.0, max(50.0, 1.25 * frame[1] / page_h_in)))
        pages = [p.page for p in printed_pages(pdf, dpi)]
        kw.setdefault("seed", cfg.run.seed)
        return cls(pages, cfg.capture.channel, frame, realtime=realtime, name=f"simulated camera on {run.root}", **kw)

    # -- rendering ------------------------------------------------------------------------------
    def _pose(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._cache:
            sheet_index, _ = self._poses[k]
            page = self.pages[sheet_index]
            g = torch.Generator().manual_seed(self.seed * 7919 + k)
            channel = build_channel(self.channel_cfg)
            params = channel.sample(1, generator=g)
            x = torch.from_numpy(page).permute(2, 0, 1)[None].float().div_(255)
            with torch.no_grad():
                out = channel(x, params, out_size=self.frame, background=desk(self.frame, g), jpeg=False)
            img = out.images[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            h, w = page.shape[:2]
            corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float64)
            hom = out.homographies[0].numpy()
            pc = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), hom).reshape(-1, 2)
            self._cache[k] = (np.ascontiguousarray(img), pc)
        return self._cache[k]

    def render(self, i: int) -> np.ndarray:
        """Frame i of the schedule (without the per-frame sensor noise)."""
        kind, k, prev, t = self._segments[i]
        if kind == "move":
            img, a = self._pose(prev)
            _, b = self._pose(k)
            m = cv2.getPerspectiveTransform(a.astype(np.float32), (a + t * (b - a)).astype(np.float32))
            out = cv2.warpPerspective(img, m, self.frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            step = float(np.linalg.norm((b - a).mean(axis=0))) / (self._move + 1)  # px per frame
            return motion_blur(out, (b - a).mean(axis=0), max(6.0, 0.6 * step))  # shutter open 60 % of it
        img, _ = self._pose(k)
        if kind in ("defocus", "soft"):
            return cv2.GaussianBlur(img, (0, 0), self.defocus_sigma if kind == "defocus" else self.soft_sigma)
        return img.copy()

    def read(self) -> Optional[np.ndarray]:
        if self._next >= len(self._segments):
            if not self.loop:
                return None
            self._next = 0
        img = self.render(self._next)
        self._next += 1
        if self.frame_noise > 0:
            noise = np.empty(img.shape, np.int16)
            cv2.randn(noise, 0, self.frame_noise)  # type: ignore[call-overload]  # cv2's stubs: arrays; scalars work
            img = cv2.add(img.astype(np.int16), noise, dtype=cv2.CV_16S).clip(0, 255).astype(np.uint8)
        self._pacer.wait()
        self.index += 1
        return img

    def info(self, index: int) -> dict:
        """What frame `index` (counted from open, loops included) shows."""
        return self.truth[index % len(self.truth)]

    def open(self) -> "SimulatedSource":
        for k in range(len(self._poses)):  # render every viewpoint now: read() stays cheap (a live stream)
            self._pose(k)
        self._next = 0
        self.index = -1
        return self


def motion_blur(img: np.ndarray, direction: np.ndarray, length: float) -> np.ndarray:
    """Smear `img` along `direction` over `length` px (a line kernel)."""
    n = int(max(3, min(61, round(length)))) | 1
    d = np.asarray(direction, np.float64)
    norm = float(np.linalg.norm(d))
    d = d / norm if norm > 1e-6 else np.array([1.0, 0.0])
    k = np.zeros((n, n), np.float32)
    c = n // 2
    p0 = (int(round(c - d[0] * c)), int(round(c - d[1] * c)))
    p1 = (int(round(c + d[0] * c)), int(round(c + d[1] * c)))
    cv2.line(k, p0, p1, 1.0, 1)
    k /= k.sum()
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
