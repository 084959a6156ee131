"""A simulated scene for `physical scene`: an object's photo with a printed patch beside it at random
poses, as a camera films it.

Each frame is the patch sent through the print-and-camera channel (:mod:`physical.channel`: the
printer's colours, then a pose from the channel's geometry) onto the object's photo as the
background, then the camera's blur, light, noise and JPEG over the whole frame. A pose is held for
`hold` frames (a hand-held patch moves little between neighbouring frames); the sensor noise is new
in every frame. The patch's corners in each frame are returned as the ground truth.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch

from physical.channel.build import build_channel
from physical.config import ChannelConfig

# the patch's poses: up to 25 deg of rotation, some tilt, its bounding box 30-45 % of the frame, anywhere
SCENE_POSES = {"rotation_deg": 25.0, "tilt": 0.15, "scale": [0.3, 0.45], "translate": 0.3}


def scene_channel() -> ChannelConfig:
    """The phone preset's printer and camera with the scene's poses."""
    return ChannelConfig(preset="phone", **SCENE_POSES)  # type: ignore[arg-type]  # rng fields take their values


def scene_frames(object_rgb: np.ndarray, patches: np.ndarray, *, seed: int = 0, hold: int = 1,
                 channel: Optional[ChannelConfig] = None, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N x H x W x 3 uint8, the object's size) with patches[i] (N x h x w x 3 uint8, square)
    printed and posed in frame i, and the N x 4 x 2 corners (TL TR BR BL, frame pixels) of each."""
    n, ph, pw = patches.shape[:3]
    ch = build_channel(channel or scene_channel())
    gen = torch.Generator().manual_seed(seed)
    poses = ch.sample(-(-n // hold), generator=gen)
    params = {k: v.repeat_interleave(hold)[:n] for k, v in poses.items()}
    params["noise_seed"] = torch.randint(0, 2**62, (n,), generator=gen)
    h, w = object_rgb.shape[:2]
    background = torch.from_numpy(np.ascontiguousarray(object_rgb)).permute(2, 0, 1)[None].float() / 255
    frames, homs = [], []
    with torch.no_grad():
        for i in range(0, n, chunk):
            x = torch.from_numpy(np.ascontiguousarray(patches[i : i + chunk])).permute(0, 3, 1, 2).float() / 255
            p = {k: v[i : i + chunk] for k, v in params.items()}
            out = ch(x, p, out_size=(w, h), background=background.expand(len(x), -1, -1, -1))
            frames.append(out.images.mul(255).round().byte().permute(0, 2, 3, 1).numpy())
            homs.append(out.homographies.numpy())
    square = np.array([[[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]]], np.float64)
    corners = np.stack([cv2.perspectiveTransform(square, hm)[0] for hm in np.concatenate(homs)])
    return np.concatenate(frames), corners


def patch_share(corners: np.ndarray, shape: tuple, region: Optional[tuple[int, int, int, int]] = None) -> float:
    """The share of the frame (or of the region x, y, w, h) the patch with these corners covers."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    if region is not None:
        x, y, w, h = region
        mask = mask[y : y + h, x : x + w]
    return float(mask.mean())
