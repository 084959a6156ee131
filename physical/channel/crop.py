"""EOT's view of the print-and-camera channel: what the classifier sees of one cell.

The channel (`physical.channel.core.Channel`, built from ``capture.channel``) is ONE module: the
simulator sends whole sheets through it into a photo frame, and EOT sends cells through the very
same module, with the same ranges, so simulation and EOT cannot drift apart. What differs is only
*where the classifier looks*: after the align stage, the classifier never sees the photo's pose
(a sheet rotated by up to 180 degrees, tilted, anywhere in the frame) but a crop rectified back to
the cell's digital geometry. Training an attack against the full-frame pose would waste the budget
on rotations that alignment undoes.

So :class:`CropChannel` models the cell's trip faithfully and cheaply:

1. the shared Channel takes the B x N cells (printer tone and gamut, the same pose distribution
   of rotation / tilt / scale / translation, blur, lighting and white balance, sensor noise, JPEG)
   into a photo frame of ``cell_px`` pixels a side: the cell's size in the simulator's photos at
   channel scale 1 (from ``sheet.cell_mm``, the paper and ``capture.frame``), capped at the cell's
   own size for EOT (align resamples the crop to it, so a finer photo shows nothing more; blur, noise
   and JPEG then act at crop scale, a little harsher than at photo scale: a conservative and cheap
   attack). ``photo_scale=True`` keeps the photo's own size instead and resamples the crop as align
   does (anti-aliased), so blur, noise and JPEG act where a calibration measured them: the survival
   prediction uses it. The channel's scale range (a calibration's pixels per millimetre, see
   `Channel.for_photo`) sets the cell's share of the frame;
2. the crop is rectified with the channel's own homography, composed with a small random
   homography, ``misalign``: every crop corner moves by up to +- misalign x the cell side, which is
   the residual geometry that remains after alignment (a few degrees of rotation, a few percent of
   scale, sub-cell translation, slight tilt: marker detection error, paper curl, lens distortion).

All of it is batched (one homography per sample, one warp per stage) and differentiable in the cell,
so `Attack.gradient` runs the N samples of every image as one batch. Parameters follow the
Channel's convention: a dict of (n,) tensors from a seeded generator; ``misalign`` adds an
(n, 4, 2) tensor of corner offsets (fractions of the cell's width / height).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from physical.channel.core import Channel, ChannelOutput
from physical.sheets.layout import layout_for
from physical.transforms.ops import gaussian_blur


def cell_px_for(cfg) -> float:
    """A cell's side in the simulator's photos at channel scale 1 (no rotation, no tilt): the page
    just fills ``capture.frame`` and the cell keeps its share of the page."""
    lay = layout_for(cfg.sheet)
    w, h = cfg.capture.frame
    return float(lay.cell * min(w / lay.page_w, h / lay.page_h))


class CropChannel(torch.nn.Module):
    """A cell -> its aligned crop in a photo, through the shared :class:`Channel`."""

    def __init__(self, channel: Channel, cell_px: float = 182.0, misalign: float = 0.03, photo_scale: bool = False):
        super().__init__()
        self.channel = channel
        self.cell_px = float(cell_px)
        self.misalign = float(misalign)
        self.photo_scale = bool(photo_scale)

    def sample(self, n: int, *, generator: torch.Generator, strength: float = 1.0,
               device=None) -> dict[str, torch.Tensor]:
        params = self.channel.sample(n, generator=generator, strength=strength, device=device)
        u = torch.rand(n, 4, 2, generator=generator, device=generator.device, dtype=torch.float64)
        params["misalign"] = ((2 * u - 1) * (self.misalign * float(strength))).cpu()
        return params

    def frame_size(self, h: int, w: int) -> tuple[int, int]:
        """(W, H) of the photo frame the cell is taken into: cell_px, but never more pixels than the
        cell has (align resamples the crop to the cell's size, so a photo finer than the cell shows
        nothing more of it; capping makes blur, noise and JPEG act at crop scale, slightly harsher
        than at photo scale, and keeps the cost of N samples near N model passes), rounded to a
        multiple of 16 (JPEG's macroblock: no padding)."""
        side = self.cell_px if self.photo_scale else min(self.cell_px, max(h, w))
        k = side / max(h, w)
        return max(16, 16 * round(w * k / 16)), max(16, 16 * round(h * k / 16))

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor], out_size=None,
                background=None) -> ChannelOutput:
        """N cells (N x C x H x W in [0, 1]) -> N aligned crops of the same size, and the N residual
        homographies (cell pixel -> crop pixel, float64, cpu)."""
        h, w = x.shape[-2:]
        chan = {k: v for k, v in params.items() if k != "misalign"}
        frame = self.frame_size(h, w)
        photo_px = self.cell_px / max(frame)  # photo pixels per frame pixel (about 1 at photo scale)
        photo, hom = self.channel(x, chan, out_size=frame, background=background, photo_px=photo_px)
        if self.photo_scale:  # align's anti-aliasing before it decimates (align.quality.warp_cell)
            s = hom[:, :2, :2].det().abs().sqrt().to(photo.device, photo.dtype)  # photo px per cell px
            photo = gaussian_blur(photo, torch.where(s > 1.5, 0.45 * (s * s - 1).clamp_min(0).sqrt(), 0.0))
        # align's estimate of the cell -> photo homography is hom @ err: err moves the cell's
        # corners by the sampled fractions of its size
        n = hom.shape[0]
        # deferred: kornia takes ~0.4 s to import, and config checks load this module
        from kornia.geometry.transform import get_perspective_transform

        corners = torch.tensor([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]],
                               dtype=torch.float64).expand(n, 4, 2)
        off = params.get("misalign")
        moved = corners if off is None else corners + off.to(torch.float64) * torch.tensor([w, h], dtype=torch.float64)
        err = get_perspective_transform(corners, moved)  # cell px -> cell px, float64
        crop = _resample(photo, hom @ err, (h, w))  # crop(u) = photo(hom err u): in [0, 1] as the photo is
        return ChannelOutput(crop, torch.linalg.inv(err))


def _resample(img: torch.Tensor, at: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """out[n, :, v, u] = img[n] bilinearly sampled at the pixel `at[n] @ (u, v, 1)` (pixel centres at
    integers, edge pixels extended): kornia's warp_perspective with the map given the other way round,
    which saves an inversion and a quarter of the time. The grid is built on the image's device."""
    n, _, ih, iw = img.shape
    h, w = size
    dev, dt = img.device, img.dtype
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=dt), torch.arange(w, device=dev, dtype=dt), indexing="ij")
    pts = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, device=dev, dtype=dt)])
    src = at.to(dev, dt) @ pts  # n x 3 x hw
    norm = torch.tensor([2.0 / max(iw - 1, 1), 2.0 / max(ih - 1, 1)], device=dev, dtype=dt).view(1, 2, 1)
    grid = (src[:, :2] / src[:, 2:] * norm - 1).transpose(1, 2).reshape(n, h, w, 2)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
