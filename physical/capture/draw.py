"""Drawing on frames (guided capture's preview, the live view): text panels, bars, outlines.

Frames are RGB uint8 and are drawn on in place; colours are RGB. OpenCV's Hershey font only has
ASCII, so text is reduced to it.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Optional, Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
GREEN = (40, 200, 60)
RED = (230, 40, 40)
YELLOW = (250, 210, 40)
WHITE = (255, 255, 255)
GREY = (150, 150, 150)
BLACK = (0, 0, 0)
CYAN = (60, 200, 230)


@lru_cache(maxsize=1)
def gui_available() -> bool:
    """Whether this OpenCV build has a window toolkit (opencv-python-headless has none)."""
    info = cv2.getBuildInformation()
    i = info.find("GUI:")
    if i < 0:
        return False
    line = info[i:info.find("\n", i)]
    return "NONE" not in line.upper()


def has_display() -> bool:
    """True when a window can be opened: an OpenCV build with a GUI and, on Linux/BSD, a display."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return False
    return gui_available()


def ascii_text(s: str) -> str:
    return s.encode("ascii", "replace").decode("ascii")


def scale_for(img: np.ndarray) -> float:
    """Font scale that stays readable from 640 to 4000 px wide frames."""
    return max(0.45, min(1.6, img.shape[1] / 1600))


def text(img: np.ndarray, s: str, org: tuple[int, int], scale: float, color=WHITE, thickness: int = 1,
         outline: bool = True) -> None:
    s = ascii_text(s)
    org = (int(org[0]), int(org[1]))
    if outline:
        cv2.putText(img, s, org, FONT, scale, BLACK, thickness + 2, cv2.LINE_AA)
    cv2.putText(img, s, org, FONT, scale, color, thickness, cv2.LINE_AA)


def shade(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.55) -> None:
    """Darken a rectangle (a panel's background)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[:] = (roi.astype(np.float32) * (1 - alpha)).astype(np.uint8)


def panel(img: np.ndarray, lines: Sequence[tuple[str, tuple]], origin: tuple[int, int] = (8, 8),
          scale: Optional[float] = None) -> tuple[int, int]:
    """Lines of (text, colour) on a dark box at `origin`; returns the box's bottom-right corner."""
    scale = scale or scale_for(img)
    lh = int(28 * scale) + 4
    widths = [cv2.getTextSize(ascii_text(t), FONT, scale, 1)[0][0] for t, _ in lines] or [0]
    x0, y0 = origin
    x1, y1 = x0 + max(widths) + 16, y0 + lh * len(lines) + 10
    shade(img, x0, y0, x1, y1)
    for i, (t, c) in enumerate(lines):
        text(img, t, (x0 + 8, y0 + 4 + lh * (i + 1) - int(6 * scale)), scale, c, outline=False)
    return x1, y1


def poly(img: np.ndarray, pts: np.ndarray, color, thickness: int = 2) -> None:
    p = np.round(np.asarray(pts, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [p], True, color, thickness, cv2.LINE_AA)


def label_at(img: np.ndarray, s: str, pt: tuple[float, float], color, scale: Optional[float] = None) -> None:
    """A filled label box with its top-left corner at `pt`, kept inside the frame."""
    scale = scale or scale_for(img) * 0.9
    s = ascii_text(s)
    (tw, th), base = cv2.getTextSize(s, FONT, scale, 1)
    h, w = img.shape[:2]
    x = int(min(max(0, pt[0]), max(0, w - tw - 8)))
    y = int(min(max(0, pt[1]), max(0, h - th - base - 8)))
    cv2.rectangle(img, (x, y), (x + tw + 8, y + th + base + 6), color, -1)
    dark = sum(color) > 380
    cv2.putText(img, s, (x + 4, y + th + 3), FONT, scale, BLACK if dark else WHITE, 1, cv2.LINE_AA)


def bar(img: np.ndarray, x: int, y: int, w: int, h: int, frac: float, color) -> None:
    cv2.rectangle(img, (x, y), (x + w, y + h), GREY, 1)
    fw = int(round(max(0.0, min(1.0, frac)) * (w - 2)))
    if fw > 0:
        cv2.rectangle(img, (x + 1, y + 1), (x + fw, y + h - 1), color, -1)


class Window:
    """An OpenCV window showing RGB frames; `key()` returns the key pressed (or -1); `closed` once the
    user closes it."""

    def __init__(self, title: str, max_width: int = 1400):
        self.title = title
        self.max_width = max_width
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        self.closed = False

    def show(self, rgb: np.ndarray) -> int:
        img = rgb
        if img.shape[1] > self.max_width:
            f = self.max_width / img.shape[1]
            img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        cv2.imshow(self.title, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.closed = True
        except cv2.error:
            self.closed = True
        return key & 0xFF if key >= 0 else -1

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
