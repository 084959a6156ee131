"""Calibration of the camera and of the printer-to-camera colour channel, from the user's photos.

``physical calibrate targets`` writes the targets into ``calibration/``: ``charuco.pdf`` (camera)
and ``colour-chart.pdf`` (colour, blur, noise). ``physical calibrate camera --source PHOTOS`` fits
``calibration/camera.json`` (intrinsics, distortion, RMS error, views), which the align stage
undistorts with (``align.camera_calibration``). ``physical calibrate colour --source PHOTOS`` fits
``calibration/colour.json`` (the colour model, held-out Delta-E 2000, gamut, blur and noise), which
the shared print-and-camera channel uses (``capture.channel.calibration``), and with it the simulator
and EOT.

Modules: :mod:`.targets` (board and chart, PDFs), :mod:`.camera`, :mod:`.colour` (measurement and
fit), :mod:`.model` (the differentiable colour model), :mod:`.files` (JSON files, checked loaders),
:mod:`.target_photos` (photos with known ground truth), :mod:`.predict` (what a channel predicts for
a printed run, pooled over every photo), :mod:`.cli`.
"""
from __future__ import annotations

from physical.channel.files import CalibrationError, load_camera, load_colour


__all__ = ["CalibrationError", "load_camera", "load_colour"]
