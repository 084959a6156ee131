"""The page `physical live --serve` serves, in a real browser: headless Chromium driven by selenium
and chromium-driver (Debian: chromium, chromium-driver; pip: selenium). The page loads, its stream
image updates, the page's defence switch changes the defence, and /status.json says so, as plain
JSON. Skipped only where Chromium or its driver is not installed (CI installs them: .ci/run)."""
from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request

import pytest

from physical.cli.main import main
from tests.capture_live.test_capture_live import FRAME, filmed, free_port, printed, video  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = [pytest.mark.slow,  # a real browser against a live stream
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium or chromium-driver is not installed "
                                                                  "(Debian: chromium chromium-driver)")]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={FRAME[0] + 100},{FRAME[1] + 300}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def status(base: str) -> dict:
    return json.loads(urllib.request.urlopen(base + "/status.json", timeout=5).read())


def open_page(browser, base: str, ready=lambda st: True):
    """The server's page in the browser once status.json answers (and `ready` holds of it), with its
    stream image showing a frame: that image."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + 30
    while True:
        try:
            if ready(status(base)):
                break
        except OSError:
            pass
        assert time.time() < deadline, "the live server did not come up"
        time.sleep(0.3)
    browser.get(base + "/")
    img = browser.find_element(By.ID, "stream")
    deadline = time.time() + 20
    while browser.execute_script("return arguments[0].naturalWidth", img) == 0:
        assert time.time() < deadline, "the stream image never showed a frame"
        time.sleep(0.3)
    return img


def test_live_page_in_headless_chromium(printed, video, browser):
    from selenium.webdriver.common.by import By

    port = free_port()
    rc = []
    t = threading.Thread(target=lambda: rc.append(main([
        "live", "--source", f"video:{video}", "--loop", "--headless", "--serve", str(port), "--run", str(printed[2]),
        "--seconds", "45"])))
    t.start()
    base = f"http://127.0.0.1:{port}"
    try:
        # the stream image shows frames and they change (the film moves; the overlay's rates change)
        img = open_page(browser, base, lambda st: st["frames_shown"] > 0)
        assert browser.execute_script("return arguments[0].naturalWidth", img) == FRAME[0]
        shots = [img.screenshot_as_png]
        deadline = time.time() + 20
        while shots[-1] == shots[0]:
            assert time.time() < deadline, "the stream image did not update"
            time.sleep(0.5)
            shots.append(img.screenshot_as_png)
        # the page's control switches the defence; the page comes back with it marked, status.json agrees
        assert status(base)["defence"] == "none"
        browser.find_element(By.CSS_SELECTOR, "button[value=jpeg]").click()
        deadline = time.time() + 10
        while not browser.find_elements(By.CSS_SELECTOR, "button.on") or \
                browser.find_element(By.CSS_SELECTOR, "button.on").text != "jpeg":
            assert time.time() < deadline, "the page did not mark the new defence"
            time.sleep(0.2)
        browser.get(base + "/status.json")
        seen = json.loads(browser.find_element(By.TAG_NAME, "body").text)
        assert seen["defence"].startswith("jpeg")
        # plain JSON: a result with cells in view carries each quad as a list of [x, y]
        deadline = time.time() + 30
        while not ((st := status(base))["result"] and st["result"]["cells"]):
            assert time.time() < deadline, "no result with cells in view"
            time.sleep(0.5)
        for c in st["result"]["cells"]:
            q = c["quad"]
            assert isinstance(q, list) and len(q) == 4 and all(isinstance(v, float) for xy in q for v in xy)
        # the page: the whole frame's panel says what it is; each cell in view has its top-5 in the table
        # beside the stream and on hover (a region over the cell whose title lists them)
        browser.get(base + "/")
        assert "whole frame" in browser.find_element(By.TAG_NAME, "body").text
        snapshot = ("return [Array.from(document.querySelectorAll('#cells tr')).map(r => [r.cells[0].innerText, "
                    "r.cells.length > 1 ? r.cells[1].innerText : '']), "
                    "Array.from(document.querySelectorAll('#hot div')).map(d => d.title)]")
        deadline = time.time() + 30
        while not (seen := browser.execute_script(snapshot))[1]:
            assert time.time() < deadline, "no hover region over a cell"
            time.sleep(0.5)
        rows, titles = seen
        assert rows and all(cell.startswith("sheet") for cell, _ in rows), rows
        assert all(len(top.strip().splitlines()) == 5 for _, top in rows), rows  # the top-5, one class a line
        assert all(len(t.splitlines()) == 6 and t.startswith("sheet") for t in titles)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#frame tr")) == 5
        # the favicon is served (no 404 in the console)
        assert urllib.request.urlopen(base + "/favicon.ico", timeout=5).status == 200
    finally:
        t.join(timeout=120)
    assert rc == [0]
