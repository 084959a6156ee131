"""Photo files as phones and cameras write them: HEIC (pillow-heif), 16-bit PNG and TIFF, photos past
Pillow's decompression-bomb limit; and a HEIC file where the plugin is missing: one line saying
what to do."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from physical.align import read_photo
from physical.rundir import read_image


def sample(h: int = 240, w: int = 320) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def test_16_bit_png_and_tiff_are_scaled_not_clipped(tmp_path):
    rgb = sample()
    grey16 = (rgb[:, :, 0].astype(np.uint16) * 257)  # 0..65535
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    got = read_photo(tmp_path / "grey16.png")
    assert got.dtype == np.uint8 and got.shape == (240, 320, 3)
    assert np.abs(got[:, :, 0].astype(int) - rgb[:, :, 0]).max() <= 1  # not all white
    colour16 = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    for name in ("colour16.tif", "colour16.png"):
        cv2.imwrite(str(tmp_path / name), colour16)
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint8 and np.abs(got.astype(int) - rgb).max() <= 1, name


def test_heic_photos_are_read(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    rgb = sample()
    Image.fromarray(rgb).save(tmp_path / "IMG_0001.HEIC", quality=95)
    got = read_photo(tmp_path / "IMG_0001.HEIC")
    assert got.shape == rgb.shape and np.abs(got.astype(float) - rgb).mean() < 3
    from physical.capture.sources import list_photos

    (tmp_path / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(20))  # a broken one
    photos, skipped = list_photos(tmp_path)
    assert [p.name for p in photos] == ["IMG_0001.HEIC"] and skipped[0]["file"] == "IMG_0002.HEIC"


def test_heic_without_the_plugin_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "IMG_0003.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(200))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if not installed
    with pytest.raises(ValueError, match=r"^IMG_0003\.HEIC: a HEIC/HEIF photo.*pip install pillow-heif"):
        read_photo(tmp_path / "IMG_0003.HEIC")
    from physical.capture.sources import list_photos

    (tmp_path / "ok.png").write_bytes(cv2.imencode(".png", sample())[1].tobytes())
    photos, skipped = list_photos(tmp_path)
    assert [p.name for p in photos] == ["ok.png"] and "pip install pillow-heif" in skipped[0]["reason"]


def test_photos_past_pillows_limit_are_read_by_opencv(tmp_path, monkeypatch):
    """Pillow calls anything over 2 x MAX_IMAGE_PIXELS (179 MP by default) a decompression bomb; such
    a photo is decoded by OpenCV instead, up to MAX_PHOTO_PIXELS. (The limits are lowered here so
    that the test photo can be small.)"""
    import physical.rundir as rundir

    rgb = sample(600, 800)
    cv2.imwrite(str(tmp_path / "big.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 800 x 600 > 2 x 100 000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.jpg")
    got = read_photo(tmp_path / "big.jpg")
    assert got.shape == rgb.shape and np.abs(got.astype(float) - rgb).mean() < 3
    monkeypatch.setattr(rundir, "MAX_PHOTO_PIXELS", 400_000)
    with pytest.raises(ValueError, match=r"^big\.jpg: 800 x 600 px, more than the 0\.4 megapixels read"):
        read_photo(tmp_path / "big.jpg")
