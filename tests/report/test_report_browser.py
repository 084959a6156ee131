"""The report page in a real browser (headless Chromium, the live page test's fixture): at 1280 px it
fits the window (a wide table scrolls inside its own box), no gallery caption overlaps another, and
the gallery shows every attack and eps even when report.gallery is smaller than the number of items;
the first table counts the images with a true label and says how many (issue 26, items 6 and 8)."""
from __future__ import annotations

import pytest

from physical.rundir import read_json
from tests.capture_live.test_live_browser import CHROMIUM, DRIVER, browser  # noqa: F401  (the fixture)
from tests.experiment_run import config, run_stages

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
ATTACKS = [{"name": "fgsm", "eps": [4, 8]}, {"name": "bim", "eps": [4], "steps": 1, "alpha": 2}]
GROUPS = {("fgsm", 4), ("fgsm", 8), ("bim", 4)}


@pytest.fixture(scope="module")
def run_three_attacks(tmp_path_factory):
    """4 images (3 with a true label, rocket without) x 3 (attack, eps), a gallery of 2: the first 2
    items alone would show one attack."""
    root = tmp_path_factory.mktemp("gallery")
    cfg = config(root, experiments={}, attacks=ATTACKS, report={"gallery": 2},
                 images={"limit": 4})
    run, _ = run_stages(root, cfg, experiments=False)
    return run


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium or chromium-driver is not installed")
def test_report_page_fits_1280_and_shows_every_attack(run_three_attacks, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    html = run_three_attacks.root / "report" / "report.html"
    browser.set_window_size(1280, 1000)
    browser.get(html.as_uri())
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert 1200 <= width <= 1280
    # no horizontal scroll of the page: every wide table scrolls in its own box
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    for t in browser.find_elements(By.TAG_NAME, "table"):
        assert browser.execute_script("return arguments[0].getBoundingClientRect().right", t) <= width
    # every attack and eps in the gallery
    cells = browser.find_elements(By.CSS_SELECTOR, "#gallery ~ .cell")
    seen = {(c.get_attribute("data-attack").split("_")[0], int(float(c.get_attribute("data-eps")))) for c in cells}
    assert seen == GROUPS
    # no caption box overlaps another one
    boxes = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell .panel')).map(p => {"
        "const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
    assert boxes
    for i, a in enumerate(boxes):
        assert a[2] <= width
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] + 0.5 or b[2] <= a[0] + 0.5 or a[3] <= b[1] + 0.5 or b[3] <= a[1] + 0.5, (a, b)
    for p in browser.find_elements(By.CSS_SELECTOR, ".cell .panel"):  # no text sticks out of its panel
        assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", p)


@pytest.mark.slow
def test_first_table_counts_images_with_a_true_label(run_three_attacks):
    run = run_three_attacks
    report = read_json(run.root / "report" / "report.json")
    labels = report["labels"]
    assert labels["labelled_images"] == 3 and labels["unlabelled_images"] == ["rocket"]
    table = (run.root / "report" / "table.txt").read_text()
    assert "Kurakin's table counts the 3 image(s) with a true label; the 1 without one" in table.split("model ")[0]
    html = (run.root / "report" / "report.html").read_text()
    assert labels["table"].replace("'", "&#39;") in html  # (as Jinja escapes it)
    for row in report["kurakin"]:  # only the 3 images the line names are counted
        assert row["average"]["n"] == 3
