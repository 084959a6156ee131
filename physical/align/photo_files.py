"""Photos as the align stage reads them: 8-bit RGB from any image file a camera or phone writes,
and lens distortion removed with a fitted camera."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium

from physical.channel.files import load_camera
from physical.rundir import read_image


def _pdf_note(path: Path) -> str:
    """What a PDF in the photo folder is, as far as its metadata tells."""
    try:
        pdf = pdfium.PdfDocument(str(path))
        try:
            subject = (pdf.get_metadata_dict().get("Subject") or "").strip()
        finally:
            pdf.close()
    except Exception:  # noqa: BLE001 - any unreadable PDF is just "a PDF"
        subject = ""
    if subject.startswith("physical run "):
        return f"a PDF (the printed sheets of {subject[9:]}), not a photo; print it and photograph the paper"
    return "a PDF, not a photo"


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as 8-bit RGB (`rundir.read_image`: JPEG, PNG, TIFF, HEIC, 16-bit, EXIF orientation,
    up to 250 MP); ValueError naming the file and the reason for a file that is not a whole image
    (not an image, a PDF, truncated, corrupt, HEIC without its plugin)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            is_pdf = f.read(5) == b"%PDF-"
    except OSError as e:
        raise ValueError(f"{path.name}: cannot be read ({e.strerror})") from None
    if is_pdf:
        raise ValueError(f"{path.name}: {_pdf_note(path)}")
    try:
        return read_image(path)
    except ValueError as e:
        raise ValueError(f"{path.name}: {str(e).split(': ', 1)[-1]}") from None


@lru_cache(maxsize=4)
def _calibration(path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """camera_matrix, dist_coeffs, image_size of a camera.json (`physical calibrate camera`); a bad
    file raises CalibrationError (a ValueError and a UserError) naming the file and the bad key."""
    cal = load_camera(path)
    return cal.camera_matrix, cal.dist_coeffs, cal.image_size


def undistort(photo: np.ndarray, calibration_path: str | Path) -> np.ndarray:
    """Remove lens distortion with a fitted camera: JSON {camera_matrix, dist_coeffs[, image_size (w, h)]}.

    When the calibration was fitted at another resolution, the camera matrix is scaled to the photo.
    """
    k, dist, size = _calibration(str(calibration_path))
    h, w = photo.shape[:2]
    if size and tuple(size) != (w, h):
        k = k.copy()
        k[0] *= w / size[0]
        k[1] *= h / size[1]
    return cv2.undistort(photo, k, dist)


def reference_images(root: Path, cells: dict[tuple[int, int], dict]) -> dict[tuple[int, int], np.ndarray]:
    """(sheet, slot) -> the grey digital image a crop's sharpness and match are measured against:
    the item's clean image, for both cells of a pair (each file read once)."""
    clean = {c["item"]: c["image"] for c in cells.values() if c["role"] == "clean"}
    read: dict[str, np.ndarray | None] = {}
    out: dict[tuple[int, int], np.ndarray] = {}
    for k, c in cells.items():
        rel = clean.get(c["item"], c["image"])
        if rel not in read:
            read[rel] = cv2.imread(str(Path(root) / rel), cv2.IMREAD_GRAYSCALE)
        img = read[rel]
        if img is not None:
            out[k] = img
    return out
