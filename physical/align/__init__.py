"""The align stage: find the sheets in every photo, rectify every cell into a crop.

Per photo: detect the fiducial markers (`sheets.markers.detect_all`: coarse-to-fine ArUco, every
marker refined against its bit pattern), then look again outside the sheets they make for far,
small, blurred sheets (`seek`: a second ArUco parameter set at full resolution, unread outlines read
by correlation, kept only when the lattice confirms them); lattice ids give (sheet, point). A photo
with no sheet says why with the figure measured (`diagnose`). The markers of one sheet
index are split into *sheet instances* by RANSAC homographies (mm -> photo px), so two sheets with
the same index in one photo (this run's and another run's, say) are told apart by geometry; one
marker is enough to start an instance, which the lattice then grows from. Where an instance's
lattice or tag markers were missed, they are looked for again at the place the markers around them
predict, nearest first (`sheets.markers.find_marker`: the id is read there, by ArUco or, for a
marker too blurred for it, by correlation with the whole dictionary; never assumed). An instance
left with one marker is dropped.

Run tag policy. Lattice ids repeat from run to run; the run tag (a pair of ids printed at the
page's four corners) tells the runs apart:
- both ids of this run's tag outvoting anything else read at the sheet's own tag places: this run's
  sheet (another run's tag matches with odds of 1 in 40 000);
- other ids outvoting this run's at the tag places (each id of the pair is printed at 4 places):
  another run's sheet (named when a run beside this one printed it), ignored; one covered or
  cut-off corner, even three, leaves the tag readable, and one misread marker is outvoted;
- the tag not readable in this photo (half of it or none: a close-up, corners covered or blurred):
  the crops are kept but count only when another photo of the run's photos proves this sheet by
  its tag *and* each crop shows its printed image (`compare`'s match >= MIN_MATCH); otherwise they
  are reported with the reason and not used. The one mistake left open: another run's sheet with
  the same number and the same images in the same places, photographed with every tag marker hidden, in a
  folder that also proves this run's sheet.

Per cell: a homography from its 4 corner markers (`placed: "cell"`), or, with fewer, from the
sheet's markers around it (`placed: "sheet"`: a local fit to the nearest refined lattice markers,
its own among them, outliers dropped; `sheetfit.place_by_sheet`), or from 3 own markers where the
sheet's cannot place it; the markers' corners give the reprojection error; the crop is the cell
warped back to its digital pixel size. Quality figures per crop: markers (its own corner markers
read), placed and placed_by (how many markers placed it), reprojection error (px), sharpness (detail kept against the
digital image: 1 = as sharp),
match (does it show its printed image), the fraction of the cell inside the photo; the `align.*`
thresholds decide which crops are accepted. Cells that neither place are reported missing,
never guessed. Of several photos of one cell, the best accepted crop is marked `best` (placed by
its own markers first, then the sharpest, then the smallest reprojection error); classify uses
only that one.
"""
from __future__ import annotations

from physical.align.one_photo import align_photo
from physical.align.photo_files import read_photo, reference_images, undistort
from physical.align.quality import compare, sharpness_of

__all__ = ["align_photo", "compare", "read_photo", "reference_images", "sharpness_of", "undistort"]
