"""The one way to make a print-and-camera channel: (config, calibration, paper, frame) -> `Channel`.

Every caller (the simulator, EOT attacks, survival prediction, the report's channel section, the
simulated camera stream) builds its channel here, so a calibration, a preset or a frame reaches
them all alike. ``capture.channel`` names the calibration file (``calibration``); the paper (mm)
and the frame (px) set the scale a calibration's pixels per millimetre implies.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from physical.channel.core import Channel
from physical.channel.crop import CropChannel, cell_px_for
from physical.config import ChannelConfig, Config, EOTConfig
from physical.sheets.layout import layout_for

Device = Union[str, torch.device, None]


def build_channel(cfg: Optional[ChannelConfig] = None, *, paper_mm: Optional[tuple[float, float]] = None,
                  frame: Optional[tuple[int, int]] = None, printed_pages: bool = False,
                  device: Device = None) -> Channel:
    """A channel from ``capture.channel`` (with its calibration, if it names one). With `paper_mm`
    and `frame` it sees photos of that page in that frame (`Channel.for_photo`); `printed_pages`:
    the pages were screened by the simulator's halftone, so the measured texture draws only the rest."""
    channel = Channel(cfg)
    if paper_mm is not None and frame is not None:
        channel.for_photo(paper_mm, (int(frame[0]), int(frame[1])))
    if printed_pages:
        channel.for_printed_pages()
    return channel.to(device) if device is not None else channel


def paper_of(cfg: Config) -> tuple[float, float]:
    """The run's page (mm): the sheet layout's, or the configured size when it does not lay out."""
    try:
        lay = layout_for(cfg.sheet)
    except ValueError:
        return (float(cfg.sheet.width_mm), float(cfg.sheet.height_mm))
    return (float(lay.page_w), float(lay.page_h))


def run_channel(cfg: Config, device: Device = None, *, printed_pages: bool = False) -> Channel:
    """The run's channel: ``capture.channel`` seeing photos of the run's page in ``capture.frame``."""
    frame = None if cfg.capture.frame is None else (cfg.capture.frame[0], cfg.capture.frame[1])
    return build_channel(cfg.capture.channel, paper_mm=paper_of(cfg), frame=frame,
                         printed_pages=printed_pages, device=device)


def crop_view(cfg: Optional[Config] = None, eot: Optional[EOTConfig] = None, channel: Optional[Channel] = None,
              device: Device = None, photo_scale: bool = False) -> CropChannel:
    """EOT's view of the run's channel: a cell -> its aligned crop. `channel` defaults to the run's
    (:func:`run_channel`); the cell's size in the photo comes from ``eot.cell_px`` or the run's sheet
    and frame."""
    cfg = cfg if cfg is not None else Config()
    eot = eot if eot is not None else EOTConfig()
    if channel is None:
        channel = run_channel(cfg, device)
    cell_px = eot.cell_px if eot.cell_px is not None else cell_px_for(cfg)
    return CropChannel(channel, cell_px, eot.misalign, photo_scale)
