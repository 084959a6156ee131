"""Named print-and-camera channels (``capture.channel.preset``): the ranges a channel starts from.

A value given in ``capture.channel`` replaces the preset's; a colour calibration
(``capture.channel.calibration``) replaces what it measured (see :mod:`physical.channel.core`).
``frame`` is the simulated photo's (W, H) unless ``capture.frame`` is given. Ranges are drawn
uniformly. Figures behind the ``phone`` default:

- frame 3024 x 4032: a 12-megapixel phone photo (the main camera of most phones since 2015), held
  upright over an upright page; the sheet fills 80-92 % of it (a careful capture: the page is
  squared up in the viewfinder, rotation within 4 deg, tilt 0.06 = about 5 deg of foreshortening at
  a camera distance of 1.3 page heights); that is 11-12.5 px per printed millimetre;
- blur 0.5-1.0 px: phone main cameras resolve MTF50 at about 0.25-0.35 cycles per pixel at 12 MP
  (DxOMark and Imatest reports), a Gaussian of sigma = 0.187 / MTF50 = 0.55-0.75 px, plus a little
  focus error on a page at 25-35 cm;
- noise 0.003-0.01: in good light (ISO 50-200) phones reach 35-40 dB SNR on mid grey after their
  denoising, 1-2 % of the signal;
- exposure and white balance: auto exposure within +-3 %, auto white balance within +-3 %
  per channel; light: the lens shading corrected, a desk lamp's gradient of up to 8 %;
- JPEG 88-95: what phone cameras write (iOS about 90-92, Android camera apps 90-95).

``webcam``: a 1080p webcam streaming MJPEG, sheet held in front of it (75-90 % of the frame, up to
10 deg of rotation, a softer fixed-focus lens, more noise indoors). ``hurried``: a phone photo taken
in passing: any orientation, the sheet 50-90 % of the frame, more tilt, blur and noise, lower
JPEG quality (the ranges this tool used as its default before presets).
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "phone": {
        "frame": [3024, 4032],
        "rotation_deg": 4.0, "tilt": 0.06, "scale": [0.80, 0.92], "translate": 0.03,
        "blur_sigma": [0.5, 1.0], "noise_sigma": [0.003, 0.01],
        "brightness": [-0.03, 0.03], "contrast": [0.95, 1.05], "white_balance": 0.03, "light_gradient": 0.08,
        "jpeg_quality": [88.0, 95.0],
        "paper_white": 0.93, "ink_black": 0.08, "print_gamma": 1.1,
    },
    "webcam": {
        "frame": [1920, 1080],
        "rotation_deg": 10.0, "tilt": 0.1, "scale": [0.75, 0.9], "translate": 0.05,
        "blur_sigma": [0.8, 1.6], "noise_sigma": [0.008, 0.025],
        "brightness": [-0.06, 0.06], "contrast": [0.85, 1.1], "white_balance": 0.06, "light_gradient": 0.15,
        "jpeg_quality": [75.0, 90.0],
        "paper_white": 0.93, "ink_black": 0.08, "print_gamma": 1.1,
    },
    "hurried": {
        "frame": [4032, 3024],
        "rotation_deg": 180.0, "tilt": 0.15, "scale": [0.5, 0.9], "translate": 0.05,
        "blur_sigma": [0.8, 2.0], "noise_sigma": [0.005, 0.02],
        "brightness": [-0.08, 0.08], "contrast": [0.85, 1.1], "white_balance": 0.05, "light_gradient": 0.2,
        "jpeg_quality": [75.0, 95.0],
        "paper_white": 0.93, "ink_black": 0.08, "print_gamma": 1.1,
    },
}
DEFAULT_PRESET = "phone"


def fill_from_preset(channel) -> set:
    """Fill a ChannelConfig's keys left out (None) from its preset; the keys filled."""
    filled = set()
    for key, value in PRESETS[channel.preset].items():
        if key != "frame" and getattr(channel, key) is None:
            setattr(channel, key, list(value) if isinstance(value, list) else value)
            filled.add(key)
    return filled
