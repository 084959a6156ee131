"""The photo's noise texture: measured from flat patches, drawn by the calibrated channel's sensor."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from physical.channel.steps import codec
from physical.channel.files import CalibrationError, colour_document, load_colour
from physical.channel.texture import OPPONENT, SIZE, patch_spectra, rgb_std, textured_noise
from physical.channel.core import Channel
from physical.channel.report import describe
from physical.config import ChannelConfig
from physical.rundir import write_json


def peaked_spectrum(f0: float = 0.125, var: float = 1e-4) -> np.ndarray:
    """An opponent spectrum with a moire-like peak at (f0, 0) cycles per pixel in luma, flat chroma."""
    psd = np.zeros((3, SIZE, SIZE))
    k = round(f0 * SIZE)
    psd[0, 0, k] = psd[0, 0, -k] = 0.5 * var * SIZE * SIZE  # mean over the grid = var
    psd[1:] = var / 4
    return psd


def measure(noise: torch.Tensor) -> np.ndarray:
    """The NPS of a 1 x 3 x H x W noise image (offset to mid-grey), over every whole window."""
    img = noise[0].permute(1, 2, 0).double().numpy() + 0.5
    psd, n = patch_spectra(img, [(0, 0, img.shape[1], img.shape[0])])
    assert n > 0
    return psd / n


def test_white_noise_measures_flat_with_its_variance():
    rng = np.random.default_rng(0)
    sigma = 0.02
    img = 0.5 + rng.normal(0, sigma, (256, 256, 3))
    psd, n = patch_spectra(img, [(0, 0, 256, 256)])
    psd /= n
    assert n == 64
    # luma of three independent channels: sigma^2 / 3, flat over frequency
    y = psd[0]
    assert y.mean() == pytest.approx(sigma ** 2 / 3, rel=0.12)
    f = np.fft.fftfreq(SIZE)
    high = np.hypot(f[:, None], f[None, :]) > 0.25
    assert y[high].mean() / y[~high].mean() == pytest.approx(1.0, abs=0.2)
    assert rgb_std(psd) == pytest.approx(sigma, rel=0.1)
    # an edge in a window is not texture: the window is skipped
    img[:, 144:] += 0.3  # inside the fifth column of windows
    _, n2 = patch_spectra(img, [(0, 0, 256, 256)])
    assert n2 == n - 8


def test_drawn_noise_has_the_measured_spectrum():
    psd = peaked_spectrum()
    noise = textured_noise((1, 3, 256, 256), torch.tensor(psd), [7], torch.ones(1), "cpu", torch.float32)
    got = measure(noise)
    k = round(0.125 * SIZE)
    # the luma peak is where it was put; the variance is kept (the Hann window spreads the peak)
    peak = np.unravel_index(np.argmax(got[0]), got[0].shape)
    assert peak in ((0, k), (0, SIZE - k))
    assert got[0].mean() == pytest.approx(psd[0].mean(), rel=0.15)
    assert got[1].mean() == pytest.approx(psd[1].mean(), rel=0.15)
    # the same seed draws the same noise in any batch
    two = textured_noise((2, 3, 256, 256), torch.tensor(psd), [3, 7], torch.ones(2), "cpu", torch.float32)
    assert torch.allclose(two[1], noise[0], atol=1e-6)
    # a frame pixel twice the photo's: white noise averages to a quarter of its variance
    flat = np.full((3, SIZE, SIZE), 1e-4)
    coarse = textured_noise((1, 3, 256, 256), torch.tensor(flat), [1], torch.ones(1), "cpu", torch.float32, photo_px=2.0)
    assert measure(coarse)[0].mean() == pytest.approx(1e-4 / 4, rel=0.15)


def test_calibrated_channel_draws_the_texture(tmp_path):
    g = np.linspace(0, 1, 9)
    doc = colour_document(np.stack([g, g, g]), np.eye(3), np.zeros(3), [0.0, 0.0], [0.01, 0.03],
                          noise_spectrum=peaked_spectrum())
    path = write_json(tmp_path / "colour.json", doc)
    ch = Channel(ChannelConfig(calibration=str(path)))
    assert ch.texture is not None and "measured texture" in describe(ch)
    assert ch.sources()["noise texture (power spectrum)"] == "calibration"
    x = torch.full((9, 3, 256, 256), 0.5)
    params = ch.identity_params(9)
    # the middle of the range (gain 1) for 8 draws, and twice it for the first draw again
    params["noise_sigma"] = torch.tensor([0.02] * 8 + [0.04])
    params["noise_seed"] = torch.tensor(list(range(8)) + [0])
    y = ch.sensor(x, params) - 0.5
    level = np.mean([measure(y[i: i + 1])[0].mean() for i in range(8)])
    assert level == pytest.approx(1e-4, rel=0.1)
    assert torch.allclose(y[8], 2 * y[0], atol=1e-6)
    # strength 0 is still the identity
    out, _ = ch(x[:1], ch.sample(1, generator=torch.Generator().manual_seed(0), strength=0.0))
    assert torch.allclose(out, x[:1], atol=1e-4)


def test_a_narrow_line_comes_back_at_its_measured_height(tmp_path):
    """A halftone's moire is a narrow line; the Hann windows spread it over neighbouring bins when it
    is measured. The channel undoes that spreading, so its photos, measured the same way, show the
    line about as high as the chart's photos did (drawn as measured, it came back at 0.53)."""
    n = 512
    f = np.fft.fftfreq(n)
    # a moire-like texture: luma and chroma power in a band 0.01 cycles wide at +-0.135 cycles along x
    bump = np.exp(-((np.abs(f)[None, :] - 0.135) ** 2 + f[:, None] ** 2) / (2 * 0.01 ** 2))
    white = np.random.default_rng(1).normal(0, 1, (n, n, 3))
    tex = np.real(np.fft.ifft2(np.fft.fft2(white, axes=(0, 1)) * np.sqrt(bump)[..., None], axes=(0, 1)))
    measured, k = patch_spectra(0.5 + tex * 0.02 / tex.std(), [(0, 0, n, n)])
    measured /= k
    doc = colour_document(np.stack([np.linspace(0, 1, 9)] * 3), np.eye(3), np.zeros(3), [0.0, 0.0],
                          [0.02, 0.02], noise_spectrum=measured)
    ch = Channel(ChannelConfig(calibration=str(write_json(tmp_path / "colour.json", doc))))
    params = ch.identity_params(8)
    params["noise_sigma"] = torch.full((8,), 0.02)  # the range's middle: gain 1
    params["noise_seed"] = torch.arange(8)
    y = ch.sensor(torch.full((8, 3, 256, 256), 0.5), params) - 0.5
    got = np.mean([measure(y[i: i + 1]) for i in range(8)], 0)
    assert 0.75 < got[0].max() / measured[0].max() < 1.15
    assert got[0].mean() == pytest.approx(measured[0].mean(), rel=0.1)  # the variance is kept


def test_the_channels_photos_show_the_chroma_texture_measured_on_jpegs(tmp_path):
    """Measured on JPEG photos, the chroma texture already went through a 4:2:0 codec once; the
    channel draws it before its own codec, so it draws more where the codec drops some."""
    f = np.fft.fftfreq(SIZE)
    band = np.hypot(f[:, None], f[None, :]) < 0.2
    psd = np.zeros((3, SIZE, SIZE))
    psd[:, band] = 4e-4  # luma and chroma texture below 0.2 cycles per pixel
    x = torch.full((8, 3, 256, 256), 0.5)
    got = {}
    for jpeg in (True, False):
        doc = colour_document(np.stack([np.linspace(0, 1, 9)] * 3), np.eye(3), np.zeros(3), [0.0, 0.0],
                              [0.02, 0.02], noise_spectrum=psd)
        if jpeg:
            doc["channel"] = {"jpeg_quality": [100, 100]}  # the photos were JPEGs; the codec stays off
        ch = Channel(ChannelConfig(calibration=str(write_json(tmp_path / f"c{jpeg}.json", doc))))
        params = ch.identity_params(8)
        params["noise_sigma"] = torch.full((8,), 0.02)
        params["noise_seed"] = torch.arange(8)
        y = ch.sensor(x, params)
        params["jpeg_quality"] = torch.full((8,), 99.0)  # the codec's averaging, next to no quantisation
        z = codec.apply(y, params) - 0.5
        got[jpeg] = np.mean([measure(z[i: i + 1]) for i in range(8)], 0)
    inner = np.hypot(f[:, None], f[None, :]) < 0.15
    for c in (1, 2):
        assert got[True][c][inner].mean() == pytest.approx(4e-4, rel=0.12)  # what was measured
        assert got[False][c][inner].mean() < 0.85 * 4e-4  # drawn as measured, the codec loses some
    assert got[True][0][inner].mean() == pytest.approx(got[False][0][inner].mean(), rel=0.02)  # luma as it was


def test_a_bad_spectrum_names_its_key(tmp_path):
    g = np.linspace(0, 1, 9)
    doc = colour_document(np.stack([g, g, g]), np.eye(3), np.zeros(3), noise_spectrum=peaked_spectrum())
    doc["noise_spectrum"]["psd"] = doc["noise_spectrum"]["psd"][:2]
    p = write_json(tmp_path / "c.json", doc)
    with pytest.raises(CalibrationError, match=r"c.json: noise_spectrum.psd: expected 3 x 32 x 32 values, got 2 x 32 x 32"):
        load_colour(p)
    doc["noise_spectrum"] = {"psd": json.loads(json.dumps(peaked_spectrum().tolist()))}
    doc["noise_spectrum"]["psd"][0][0][0] = -1.0
    with pytest.raises(CalibrationError, match=r"noise_spectrum.psd: values must be finite and >= 0"):
        load_colour(write_json(tmp_path / "c.json", doc))
    doc["noise_spectrum"]["psd"][0][0][0] = 1e-4
    doc["noise_spectrum"]["by_colour"] = [[0.5, 0.5, 0.5, 1e-4, 1e-4, 1e-4], [0.5, 0.5]]
    with pytest.raises(CalibrationError, match=r"c.json: noise_spectrum.by_colour\[1\]: expected 6 numbers, got 2"):
        load_colour(write_json(tmp_path / "c.json", doc))
    assert OPPONENT.shape == (3, 3)


def test_calibration_measures_the_texture_of_chart_photos(tmp_path):
    """A printer-and-camera channel with a moire-like texture photographs the chart; `physical calibrate
    colour` measures the texture where it was put, and the fitted channel draws it again."""
    from physical.calibrate.colour import fit_colour
    from physical.sim.target_photos import simulate_target_photos
    from physical.calibrate.targets import write_targets
    from physical.rundir import read_image

    write_targets(tmp_path / "targets")
    g = np.linspace(0, 1, 9)
    truth = colour_document(np.stack([g, g, g]) ** 2.2, np.eye(3) * 0.9, np.full(3, 0.02), [0.0, 0.0], [0.01, 0.01],
                            noise_spectrum=peaked_spectrum(var=1e-4))
    cfg = ChannelConfig(calibration=str(write_json(tmp_path / "truth.json", truth)), rotation_deg=1.0, tilt=0.0,
                        white_balance=0.0, light_gradient=0.0, brightness=[0.0, 0.0], contrast=[1.0, 1.0],
                        jpeg_quality=[100.0, 100.0], scale=[0.95, 0.95])
    paths = simulate_target_photos(tmp_path / "targets" / "colour-chart.pdf", tmp_path / "photos", Channel(cfg), 1,
                                   seed=1, dpi=200, frame=(1800, 2400))
    doc = fit_colour([(p.name, read_image(p)) for p in paths], log=lambda *a: None).document
    got = np.asarray(doc["noise_spectrum"]["psd"])
    k = round(0.125 * SIZE)
    assert np.unravel_index(np.argmax(got[0]), got[0].shape) in ((0, k), (0, SIZE - k))
    assert got[0].mean() == pytest.approx(1e-4, rel=0.35)  # a JPEG-free photo: the texture's own level
    cal = load_colour(write_json(tmp_path / "colour.json", doc))
    assert Channel(ChannelConfig(calibration=cal.path)).texture is not None


def _grey_heavy(colours: np.ndarray, var: float) -> np.ndarray:
    """(P, 6) by_colour rows: opponent variances 6x `var` for mid-tone near-neutral colours, falling to
    `var` / 2 for saturated ones and for paper white and black (a halftone's texture)."""
    sat = colours.max(1) - colours.min(1)
    mid = 4 * colours.mean(1) * (1 - colours.mean(1))
    v = var * (0.5 + 5.5 * mid * np.exp(-(sat / 0.2) ** 2))
    return np.column_stack([colours, np.repeat(v[:, None], 3, 1)])


def test_texture_level_follows_the_colour_printed(tmp_path):
    """A channel whose texture is heavier in mid-tone greys photographs the chart; the calibration
    measures each patch's level, and the fitted channel draws noise at that level by colour."""
    from physical.calibrate.colour import fit_colour
    from physical.sim.target_photos import simulate_target_photos
    from physical.calibrate.targets import write_targets
    from physical.channel.texture import level_table
    from physical.rundir import read_image

    write_targets(tmp_path / "targets")
    g = np.linspace(0, 1, 9)
    lv = np.linspace(0, 1, 6)
    nodes = np.stack(np.meshgrid(lv, lv, lv, indexing="ij"), -1).reshape(-1, 3)
    flat = np.full((3, SIZE, SIZE), 1e-4)
    truth = colour_document(np.stack([g, g, g]) ** 2.2, np.eye(3) * 0.9, np.full(3, 0.02), [0.0, 0.0], [0.01, 0.01],
                            noise_spectrum=flat, texture_by_colour=_grey_heavy(nodes, 1e-4))
    cfg = ChannelConfig(calibration=str(write_json(tmp_path / "truth.json", truth)), rotation_deg=1.0, tilt=0.0,
                        white_balance=0.0, light_gradient=0.0, brightness=[0.0, 0.0], contrast=[1.0, 1.0],
                        jpeg_quality=[100.0, 100.0], scale=[0.95, 0.95])
    assert "level by colour" in Channel(cfg).sources()["noise texture (power spectrum)"]
    paths = simulate_target_photos(tmp_path / "targets" / "colour-chart.pdf", tmp_path / "photos", Channel(cfg), 2,
                                   seed=1, dpi=200, frame=(1800, 2400))
    doc = fit_colour([(p.name, read_image(p)) for p in paths], log=lambda *a: None).document
    rows = np.asarray(doc["noise_spectrum"]["by_colour"])
    assert len(rows) > 100
    want = _grey_heavy(rows[:, :3], 1e-4)[:, 3]
    assert np.corrcoef(rows[:, 3], want)[0, 1] > 0.8  # each patch's luma level, as the truth put it
    cal = load_colour(write_json(tmp_path / "colour.json", doc))
    table = level_table(cal.texture_by_colour, cal.noise_spectrum)
    ch = Channel(ChannelConfig(calibration=cal.path))
    # mid-grey and saturated red paper: the fitted channel's noise is ~3x stronger on the grey
    x = torch.stack([torch.full((3, 128, 128), 0.5), torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1).expand(3, 128, 128)])
    params = ch.identity_params(2)
    params["noise_sigma"] = torch.full((2,), ch.texture_level)
    params["noise_seed"] = torch.tensor([1, 2])
    y = ch.sensor(x, params) - x
    ratio = float(y[0].std() / y[1].std())
    assert ratio > 2.0
    assert ratio == pytest.approx(float(table[0, 4, 4, 4] / table[0, 1, 1, 7]), rel=0.25)
