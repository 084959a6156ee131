"""Geometry: one homography per sample (in-plane rotation, perspective tilt, scale, translation);
the image is placed into an ``out_size`` frame, the area it does not cover is the background."""
from __future__ import annotations

import torch

from physical.channel.steps.params import MIN_SIGMA, Getter, Ranges, around
from physical.transforms.ops import gaussian_blur

NAMES = ("rotation_deg", "tilt_x", "tilt_y", "scale", "translate_x", "translate_y")
IDENTITY = {"rotation_deg": 0.0, "tilt_x": 0.0, "tilt_y": 0.0, "scale": 1.0, "translate_x": 0.0, "translate_y": 0.0}
MAX_TILT = 0.4  # the sheet stays in front of the camera
# below this sigma a Gaussian weights the neighbouring pixels under float32's resolution
# (exp(-1 / (2 sigma^2)) < 2^-24): its blur is the identity to within rounding
FLOAT32_DELTA_SIGMA = 0.17


def ranges(get: Getter, k: float) -> Ranges:
    rot, tilt, scale, move = get("rotation_deg"), get("tilt"), get("scale"), get("translate")
    return {"rotation_deg": around(0.0, -rot, rot, k),
            "tilt_x": around(0.0, -tilt, tilt, k, -MAX_TILT, MAX_TILT),
            "tilt_y": around(0.0, -tilt, tilt, k, -MAX_TILT, MAX_TILT),
            "scale": around(1.0, scale[0], scale[1], k, 0.01),
            "translate_x": around(0.0, -move, move, k),
            "translate_y": around(0.0, -move, move, k)}


def _shift(eye: torch.Tensor, tx, ty) -> torch.Tensor:
    m = eye.clone()
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _pose(p: dict[str, torch.Tensor], w: int, h: int, eye: torch.Tensor) -> torch.Tensor:
    """Centre the image, rotate it on the desk, then the camera's perspective tilt."""
    n = eye.shape[0]
    half = torch.ones(n, dtype=torch.float64)
    centre = _shift(eye, -(w - 1) / 2 * half, -(h - 1) / 2 * half)
    t = torch.deg2rad(p["rotation_deg"])
    rot = eye.clone()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t.cos(), t.sin(), -t.sin(), t.cos()
    r = max(w, h) / 2
    tilt = eye.clone()
    tilt[:, 2, 0], tilt[:, 2, 1] = p["tilt_x"] / r, p["tilt_y"] / r
    return tilt @ rot @ centre


def homographies(params: dict[str, torch.Tensor], in_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """N x 3 x 3 float64 (cpu): input pixel -> output pixel. Sizes are (width, height)."""
    w, h = in_size
    W, H = out_size
    p = {k: v.detach().to("cpu", torch.float64) for k, v in params.items() if k != "noise_seed"}
    eye = torch.eye(3, dtype=torch.float64).repeat(p["scale"].shape[0], 1, 1)
    a = _pose(p, w, h, eye)
    # bounding box of the image's outline (pixel edges at -0.5 and size - 0.5)
    corners = torch.tensor([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]],
                           dtype=torch.float64)
    q = torch.einsum("nij,kj->nki", a, corners)
    q = q[..., :2] / q[..., 2:]
    lo, hi = q.amin(1), q.amax(1)
    size, mid = hi - lo, (hi + lo) / 2
    # scale 1 = the bounding box just fills the frame; translation stays inside the free margin
    sc = p["scale"] * torch.minimum(W / size[:, 0], H / size[:, 1])
    slack_x = ((W - sc * size[:, 0]) / 2).clamp_min(0)
    slack_y = ((H - sc * size[:, 1]) / 2).clamp_min(0)
    tx = torch.maximum(torch.minimum(p["translate_x"] * W, slack_x), -slack_x)
    ty = torch.maximum(torch.minimum(p["translate_y"] * H, slack_y), -slack_y)
    scale = eye.clone()
    scale[:, 0, 0], scale[:, 1, 1] = sc, sc
    return _shift(eye, (W - 1) / 2 + tx, (H - 1) / 2 + ty) @ scale @ _shift(eye, -mid[:, 0], -mid[:, 1]) @ a


def _blur_where_visible(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The anti-aliasing blur of the samples it changes (a slight rotation's is the identity in
    float32, and EOT's samples are mostly such): the others skip its cost."""
    on = sigma > FLOAT32_DELTA_SIGMA
    if bool(on.all()):
        return gaussian_blur(x, sigma)
    if not bool(on.any()):
        return x
    idx = on.nonzero().view(-1)
    return x.index_copy(0, idx, gaussian_blur(x.index_select(0, idx), sigma[idx]))


def apply(x: torch.Tensor, hom: torch.Tensor, out_size: tuple[int, int], background: torch.Tensor) -> torch.Tensor:
    """Warp every image with its homography into an out_size (W, H) frame over `background`."""
    # deferred: kornia takes ~0.4 s to import, and config checks (a typo's error exit) load this module
    from kornia.geometry.transform import warp_perspective

    W, H = out_size
    n, c = x.shape[:2]
    # anti-aliasing before a downscale (a camera pixel integrates over its area): f is the local
    # scale at the image centre (|det J| = |det H| / w^3 for a homography),
    # sigma = (1/f - 1) / 2 as in scikit-image's resize
    h, w = x.shape[-2:]
    w_c = hom[:, 2] @ torch.tensor([(w - 1) / 2, (h - 1) / 2, 1.0], dtype=hom.dtype)
    f = (hom.det().abs() / w_c.abs() ** 3).sqrt().to(x.device, x.dtype)
    sigma = ((1 / f - 1) / 2).clamp_min(MIN_SIGMA)
    x = _blur_where_visible(x, sigma)
    hom = hom.to(x.device, x.dtype)
    if background.shape[-2:] == (1, 1):
        # a flat background b: warp(x - b) + b is warp(x) + (1 - cover) b exactly (bilinear
        # weights sum to the cover), one warp of C channels instead of C + 1
        b = background.expand(n, c, 1, 1)
        return warp_perspective(x - b, hom, (H, W), mode="bilinear", padding_mode="zeros", align_corners=True) + b
    ones = torch.ones_like(x[:, :1])
    warped = warp_perspective(torch.cat([x, ones], 1), hom, (H, W), mode="bilinear", padding_mode="zeros",
                              align_corners=True)
    cover = warped[:, c:]
    return warped[:, :c] + (1 - cover) * background
