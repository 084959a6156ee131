"""The printer's halftone (channel.halftone_lpi): clustered dots that keep the tone, on the simulator's
pages, and the screen's own texture taken off a calibration's measured texture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from physical.channel.files import colour_document, load_colour
from physical.channel.halftone_texture import halftone_texture, without_halftone
from physical.channel.colour import ColourModel
from physical.channel.texture import SIZE
from physical.channel.core import Channel
from physical.channel.report import describe
from physical.runs.checks import from_dict
from physical.config import ChannelConfig, ConfigError
from physical.rundir import write_json
from physical.sim.print_camera import printed_pages
from physical.channel.halftone import ANGLES, halftone, through


@pytest.mark.parametrize("dpi,lpi", [(600.0, 150.0), (634.0, 133.0), (400.0, 100.0)])
def test_halftone_prints_dots_that_keep_the_tone(dpi, lpi):
    """Every pixel is ink or paper, and over the page every channel keeps its mean: also at 0 deg
    with a whole-pixel period (600 dpi / 150 lpi), where most pixels share a spot value."""
    levels = np.array([0, 13, 64, 100, 128, 191, 242, 255], np.uint8)
    rgb = np.repeat(np.repeat(np.stack([levels, levels[::-1], levels], 1)[:, None, None, :], 96, 1), 96, 2)
    for tile, level in zip(rgb, levels):
        out = halftone(np.ascontiguousarray(tile), dpi, lpi)
        assert set(np.unique(out)) <= {0, 255}
        assert out.reshape(-1, 3).mean(0) == pytest.approx(tile.reshape(-1, 3).mean(0).astype(float), abs=2.0), level


def test_halftone_screens_at_its_frequency_and_angle():
    """A mid grey's cyan screen (the R channel) has its strongest frequency at lpi / dpi cycles per
    pixel, along the screen's angle (15 deg)."""
    dpi, lpi, n = 600.0, 100.0, 480
    out = halftone(np.full((n, n, 3), 128, np.uint8), dpi, lpi)[..., 0].astype(float)
    power = np.abs(np.fft.fft2(out - out.mean())) ** 2
    f = np.fft.fftfreq(n)
    iy, ix = np.unravel_index(np.argmax(power), power.shape)
    assert np.hypot(f[iy], f[ix]) == pytest.approx(lpi / dpi, abs=1.5 / n)
    angle = np.degrees(np.arctan2(f[iy], f[ix])) % 90
    assert min(abs(angle - ANGLES[0]), abs(angle - (ANGLES[0] + 90) % 90)) < 3


def test_a_raster_too_coarse_for_the_screen_is_refused():
    with pytest.raises(ValueError, match="150-lpi screen needs a raster of at least 300 dpi"):
        halftone(np.zeros((8, 8, 3), np.uint8), 200, 150)


def _grey_pdf(path) -> None:
    c = canvas.Canvas(str(path), pagesize=(60 * mm, 60 * mm))
    c.setFillColorRGB(0.45, 0.5, 0.55)
    c.rect(10 * mm, 10 * mm, 40 * mm, 40 * mm, stroke=0, fill=1)
    c.showPage()
    c.save()


def test_the_simulators_printer_screens_its_pages(tmp_path):
    """printed_pages with a halftone: the continuous page and the screen, which keeps the page's colour
    on average and adds the screen's texture; without one a flat patch stays flat."""
    _grey_pdf(tmp_path / "grey.pdf")
    flat = next(printed_pages(tmp_path / "grey.pdf", 150.0)).page.astype(float)
    page, screen = next(printed_pages(tmp_path / "grey.pdf", 150.0, halftone_lpi=120.0))
    assert np.array_equal(page, flat)
    dots = page + 255 * screen.astype(float)
    inner = (slice(80, 200), slice(80, 200))
    assert dots[inner].reshape(-1, 3).mean(0) == pytest.approx(flat[inner].reshape(-1, 3).mean(0), abs=1.5)
    assert flat[inner].std((0, 1)).max() < 1.0
    assert dots[inner].std((0, 1)).min() > 5.0


def test_the_printer_stage_keeps_the_screened_pages_tone():
    """A curved colour model applied to the screened raster itself would lighten the mid-tones by the
    screen's variance; through() carries the screen through the model's slope and keeps the mean."""
    model = ColourModel(np.stack([np.linspace(0, 1, 17) ** 0.45] * 3), np.eye(3) * 0.9, np.full(3, 0.02))
    levels = np.array([40, 90, 128, 170, 220], np.uint8)
    tiles = np.repeat(np.repeat(levels[:, None, None, None], 128, 1), 128, 2).repeat(3, 3)
    dots = np.stack([halftone(np.ascontiguousarray(t), 634.0, 150.0) for t in tiles]).astype(np.float32) / 255
    dots = dots.reshape(len(levels), 64, 2, 64, 2, 3).mean((2, 4))  # averaged to 317 dpi
    page = torch.from_numpy(levels.astype(np.float32) / 255).view(-1, 1, 1, 1).expand(-1, 3, 64, 64)
    screen = torch.from_numpy(dots).permute(0, 3, 1, 2) - page
    with torch.no_grad():
        want = model(page + screen.mean((2, 3), keepdim=True)).mean((2, 3))  # the tile's own mean tone
        naive = model(page + screen).mean((2, 3))
        got = through(model, page, screen)
    assert (255 * (naive - want)).abs().max() > 3  # what the curvature does to a screened raster
    assert (255 * (got.mean((2, 3)) - want)).abs().max() < 0.5
    assert float(got.std()) > 0.02  # the screen's texture is still there


def test_halftone_lpi_is_checked_and_reported(tmp_path):
    with pytest.raises(ConfigError, match="halftone_lpi"):
        from_dict({"capture": {"channel": {"halftone_lpi": 20}}})
    ch = Channel(ChannelConfig(halftone_lpi=150))
    assert ch.sources()["halftone screen (simulated pages)"] == "config"
    assert "150-lpi screens" in describe(ch)


def _calibration(tmp_path, psd, rows):
    g = np.linspace(0, 1, 9)
    doc = colour_document(np.stack([g, g, g]), np.eye(3), np.zeros(3), [0.8, 1.0], [0.01, 0.01],
                          noise_spectrum=psd, texture_by_colour=rows)
    doc["channel"] = {"px_per_mm": [11.8, 11.8]}
    return load_colour(write_json(tmp_path / "colour.json", doc))


def test_the_screens_own_texture_is_taken_off_the_measured_one(tmp_path):
    """A calibration whose measured texture is a 150-lpi screen's plus white noise: the simulator,
    which prints that screen, draws the white noise only; EOT's channel keeps the whole texture."""
    white = np.full((3, SIZE, SIZE), 2e-5)
    probe = _calibration(tmp_path, white, None)
    psd_h, camera, var_h = halftone_texture(probe, 150.0)
    assert psd_h.reshape(3, -1).mean(1).min() > 1e-5  # the screen does show in the photo
    rows = np.column_stack([camera, var_h + 2e-5])
    cal = _calibration(tmp_path, psd_h + white, rows)
    psd, rest = without_halftone(cal, 150.0)
    assert psd.reshape(3, -1).mean(1) == pytest.approx([2e-5] * 3, rel=0.1)
    assert rest[:, 3:] == pytest.approx(np.full_like(var_h, 2e-5), rel=0.1)

    cfg = ChannelConfig(calibration=str(tmp_path / "colour.json"), halftone_lpi=150.0)
    eot = Channel(cfg)
    printed = Channel(cfg).for_printed_pages()
    assert float(printed.texture.mean()) < 0.5 * float(eot.texture.mean())


def test_a_run_prints_its_simulated_sheets_with_the_halftone(tmp_path):
    """`physical run` with capture.channel.halftone_lpi: the simulator's photos are of screened pages
    (their cells carry the screen's texture: more fine detail than the same draw of continuous-tone
    pages, at the same tone), and simulated.json says where the screen came from."""
    import json
    import shutil

    import cv2
    import yaml

    from physical.cli.main import main

    def run(name, channel):
        cfg = {"run": {"name": "ht", "output": f"runs_{name}", "seed": 1}, "images": {"limit": 1},
               "attacks": [{"name": "fgsm", "eps": [16]}],
               "sheet": {"paper": "custom", "width_mm": 130, "height_mm": 110, "cell_mm": 30, "marker_mm": 6,
                         "margin_mm": 5},
               "capture": {"dpi": 300, "frame": [1300, 1100], "channel": channel},
               "experiments": {"enabled": False}, "report": {"gallery": 0, "html": False}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["run", str(tmp_path / f"{name}.yaml"), "--until", "capture"]) == 0
        root = tmp_path / f"runs_{name}" / "ht"
        photo = cv2.imread(str(sorted((root / "capture" / "photos").glob("*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
        return root, photo.astype(float)

    still = {"rotation_deg": 0, "tilt": 0, "translate": 0, "blur_sigma": [0, 0], "noise_sigma": [0, 0],
             "jpeg_quality": [100, 100], "scale": [0.95, 0.95]}
    root, dots = run("dots", dict(still, halftone_lpi=100))
    # the same run (its id, tag markers and caption come from the clock and its content: two runs
    # made a second apart print other page furniture, 0.2-0.5 levels of tone) photographed again
    # without the screen: only the capture stage reads capture.channel
    shutil.copytree(tmp_path / "runs_dots", tmp_path / "runs_flat")
    _, flat = run("flat", still)
    sim = json.loads((root / "capture" / "simulated.json").read_text())
    assert sim["channel"]["halftone screen (simulated pages)"] == "config"
    again = json.loads((tmp_path / "runs_flat" / "ht" / "capture" / "simulated.json").read_text())
    assert "halftone screen (simulated pages)" not in again["channel"] and again["seed"] == sim["seed"]

    def fine(img):
        return float(np.abs(img - cv2.GaussianBlur(img, (0, 0), 2)).mean())

    diff = dots - flat  # the same draw of the same geometry: what the screen changed
    assert fine(dots) > 1.5 * fine(flat)
    assert abs(diff.mean()) < 0.5  # the tone kept (0..255 levels)
