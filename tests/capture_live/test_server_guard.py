"""Who may use the servers `physical live --serve` and `physical replay` start (issue 27.9): a page
of another site (its Origin) and a rebinding domain name (its Host) get 403, the defence switches by
POST with the page's token only, and a server bound beyond loopback wants its random token on every
request, printed in its URL with a warning."""
from __future__ import annotations

import http.client
import io
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from physical.capture.replay import ReplayServer, encode_jpegs
from physical.cli.main import main
from physical.live.server import MjpegServer
from physical.rundir import write_image


def request(port: int, method: str, path: str, headers: dict | None = None, body: str | None = None,
            host: str = "127.0.0.1") -> tuple[int, bytes]:
    c = http.client.HTTPConnection(host, port, timeout=5)
    hdrs = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if body is not None:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    status = r.status
    data = r.read(200) if status != 200 or "mjpg" not in path else b""
    c.close()
    return status, data


@pytest.fixture
def live_server():
    state = {"defence": "none"}

    def set_defence(name):
        state["defence"] = name
        return name

    server = MjpegServer(0, status=lambda: dict(state), set_defence=set_defence, title="t")
    server.publish(np.zeros((32, 48, 3), np.uint8))
    yield server, state
    server.close()


def token_of(page: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


def test_live_page_switches_by_post_with_its_token_only(live_server):
    server, state = live_server
    code, page = request(server.port, "GET", "/")
    assert code == 200
    _, full = 0, urllib.request.urlopen(server.url, timeout=5).read().decode()
    token = token_of(full)
    # the old GET switch changes nothing
    assert request(server.port, "GET", "/defence?name=jpeg")[0] == 405 and state["defence"] == "none"
    # a POST without the token, or with another one, is refused
    assert request(server.port, "POST", "/defence", body="name=jpeg")[0] == 403
    assert request(server.port, "POST", "/defence", body="name=jpeg&token=guess")[0] == 403
    assert state["defence"] == "none"
    # another site's page posting the form (it cannot read the token, but even with it): 403
    evil = {"Origin": "http://evil.example"}
    assert request(server.port, "POST", "/defence", evil, f"name=jpeg&token={token}")[0] == 403
    assert request(server.port, "POST", "/defence", {"Referer": "http://evil.example/x"},
                   f"name=jpeg&token={token}")[0] == 403
    assert state["defence"] == "none"
    # the page's own form: same origin, its token
    own = {"Origin": f"http://127.0.0.1:{server.port}"}
    code, _ = request(server.port, "POST", "/defence", own, f"name=jpeg&token={token}")
    assert code == 303 and state["defence"] == "jpeg"


@pytest.mark.parametrize("path", ["/", "/status.json", "/frame.jpg", "/stream.mjpg"])
def test_live_server_refuses_a_rebinding_host_and_another_origin(live_server, path):
    server, _ = live_server
    assert request(server.port, "GET", path, {"Host": f"attacker.example:{server.port}"})[0] == 403
    assert request(server.port, "GET", path, {"Origin": "http://attacker.example"})[0] == 403
    if path != "/stream.mjpg":
        assert request(server.port, "GET", path, {"Host": f"localhost:{server.port}"})[0] == 200


def test_live_server_serves_a_favicon(live_server):
    server, _ = live_server
    assert request(server.port, "GET", "/favicon.ico")[0] == 200


def test_replay_server_refuses_a_rebinding_host_and_another_origin():
    frames = encode_jpegs([np.full((24, 32, 3), 90, np.uint8)])
    with ReplayServer(frames, 30.0, loop=False) as phone:
        assert request(phone.port, "GET", "/video", {"Host": f"rebind.attacker.example:{phone.port}"})[0] == 403
        assert request(phone.port, "GET", "/video", {"Origin": "http://attacker.example"})[0] == 403
        assert request(phone.port, "GET", "/video")[0] == 200
        assert "token" not in phone.url  # loopback: no token needed


def test_replay_server_beyond_loopback_wants_its_token():
    frames = encode_jpegs([np.full((24, 32, 3), 90, np.uint8)])
    with ReplayServer(frames, 30.0, loop=False, host="0.0.0.0") as phone:
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(phone.url).query)["token"][0]
        assert len(token) >= 16
        assert request(phone.port, "GET", "/video")[0] == 403
        assert request(phone.port, "GET", "/video?token=wrong")[0] == 403
        assert request(phone.port, "GET", f"/video?token={token}")[0] == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_live_host_prints_a_warning_and_a_url_with_a_token(tmp_path):
    """`physical live --serve PORT --host 0.0.0.0`: a warning on stderr, the URL with its token on
    stdout; without the token the page is refused, with it the page is served."""
    port = free_port()
    out, err, rc = io.StringIO(), io.StringIO(), []
    (tmp_path / "frames").mkdir()
    for i in range(2):
        write_image(tmp_path / "frames" / f"{i}.png", np.full((120, 160, 3), 60 * i, np.uint8))

    def run():
        with redirect_stdout(out), redirect_stderr(err):
            rc.append(main(["live", "--source", f"folder:{tmp_path / 'frames'}", "--loop", "--headless", "--no-cells", "--serve", str(port),
                            "--host", "0.0.0.0", "--seconds", "20", "--set", f"run.output={tmp_path}"]))

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.time() + 60
        while "token=" not in out.getvalue():
            assert not rc, f"live ended early: {err.getvalue()}"
            assert time.time() < deadline, f"no URL printed: {out.getvalue()} {err.getvalue()}"
            time.sleep(0.2)
        url = re.search(r"serving (\S+)", out.getvalue()).group(1)
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
        assert "beyond this machine" in err.getvalue()
        assert request(port, "GET", "/")[0] == 403
        code, _ = request(port, "GET", f"/?token={token}")
        assert code == 200
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=5).read().decode()
        assert f"/stream.mjpg?token={token}" in page and f"/status.json?token={token}" in page
    finally:
        t.join(timeout=60)
    assert rc == [0]


def test_live_host_without_serve_is_one_line_exit_2(capsys):
    assert main(["live", "--source", "simulate", "--host", "0.0.0.0", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and "--serve" in err and "Traceback" not in err


def test_cell_labels_stay_inside_their_cells():
    """Two neighbouring cells with long captions: each label is drawn inside its own cell (the
    whole top-5 is on the page), so neither covers the other."""
    from physical.live.overlay import annotate

    frame = np.zeros((240, 320, 3), np.uint8)
    top = [[1, "a very long class name indeed, longer than the cell", 0.9]]
    quad = lambda x0: [[x0, 40.0], [x0 + 80.0, 40.0], [x0 + 80.0, 140.0], [x0, 140.0]]  # noqa: E731
    cells = [{"sheet": 0, "slot": 0, "role": "adv", "fooled": True, "top": top, "quad": quad(60.0)},
             {"sheet": 0, "slot": 1, "role": "adv", "fooled": False, "top": top, "quad": quad(150.0)}]
    out = annotate(frame, {"top": [], "cells": cells, "frame": 0}, {}, "t")
    green = (out[:, :, 1] > 150) & (out[:, :, 0] < 100)
    red = (out[:, :, 0] > 150) & (out[:, :, 1] < 100)
    assert green[40:140, 62:138].sum() > 200 and red[40:140, 152:228].sum() > 200  # both labels drawn
    assert not green[40:, 146:].any() and not red[40:, :144].any()  # neither reaches the other cell
