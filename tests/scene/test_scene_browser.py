"""The region drawn with the mouse on `physical scene --serve`'s page, in headless Chromium (selenium
and chromium-driver, as tests/capture_live/test_live_browser.py): the drag becomes the region in
frame pixels, the page shows the server's answer, and the frames scored after it carry it."""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import cv2
import pytest

from physical.cli.main import main
from physical.live import Recorder
from tests.capture_live.test_capture_live import free_port
from tests.capture_live.test_live_browser import CHROMIUM, DRIVER, browser, open_page  # noqa: F401
from tests.scene.test_scene import FPS, rows, scene  # noqa: F401

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium or chromium-driver is not installed "
                                                                  "(Debian: chromium chromium-driver)")]


def test_a_region_drawn_with_the_mouse_is_scored(scene, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    video = cv2.VideoCapture(str(scene["lab"] / "scene.avi"))  # the scene four times over: time to draw
    frames = []
    while (got := video.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    video.release()
    rec = Recorder(tmp_path / "long.avi", FPS)
    for f in frames * 4:
        rec.write(f)
    rec.close()
    port, done = free_port(), []
    t = threading.Thread(target=lambda: done.append(main(
        ["scene", str(scene["lab"] / "pipeline.yaml"), "--source", f"video:{tmp_path / 'long.avi'}", "--headless",
         "--serve", str(port), "--out", str(tmp_path / "out"), "-q"])))
    t.start()
    base = f"http://127.0.0.1:{port}"
    try:
        img = open_page(browser, base)
        assert browser.execute_script("return arguments[0].clientWidth", img) == 240  # shown at its size
        # from near the top-left corner to the centre (selenium's offsets are from the element's centre)
        ActionChains(browser).move_to_element_with_offset(img, -118, -118).click_and_hold() \
            .move_to_element_with_offset(img, -40, -40).move_to_element_with_offset(img, 0, 0).release().perform()
        deadline = time.time() + 10
        while not (msg := browser.find_element(By.ID, "regionmsg").text):
            assert time.time() < deadline, "the page showed no answer to the drawn region"
            time.sleep(0.2)
        m = re.fullmatch(r"region (\d+),(\d+),(\d+),(\d+): classified from the next frames", msg)
        assert m, msg
        drawn = [int(v) for v in m.groups()]
        assert all(abs(a - b) <= 3 for a, b in zip(drawn, (2, 2, 118, 118), strict=True)), drawn
        st = json.loads(urllib.request.urlopen(base + "/status.json", timeout=5).read())
        assert st["region"] == drawn
    finally:
        t.join(timeout=120)
    assert done == [0]
    got = rows(tmp_path / "out" / "frames.csv")
    assert got[-1]["region"] == ",".join(map(str, drawn)) and got[-1]["region_top1"] != ""
    assert got[0]["region"] == ""
