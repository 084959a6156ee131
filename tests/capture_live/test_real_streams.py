"""Guided capture and live mode against real stream servers, not our own replay server.

- ffmpeg's HTTP MJPEG server (`ffmpeg -re -i clip -f mpjpeg -listen 1 http://...`): it serves one
  client, then ends; a probe connection before the real one would take its only slot.
- GStreamer's RTSP server (gst-rtsp-server, driven by tests/servers/rtsp_server.py with the
  system python3), RTP/JPEG over RTSP/TCP.

Both serve the simulated camera's film of the tiny run's two sheets (`test_capture_live`). The
tests skip only when the server's system packages are missing (CI installs them: .ci/run).
Also bad streams: a server that answers with something that is not video, and one that closes
after the first frame: one line naming the stream, exit code 2.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import pytest

from physical.capture.replay import encode_jpegs
from physical.cli.main import main
from tests.capture_live.test_capture_live import (FPS, FRAME, check_aligned_and_classified, check_picked_sharp, copy_run, filmed,  # noqa: F401
                               free_port, printed)

pytestmark = pytest.mark.slow  # third-party servers paced in real time

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).resolve().parents[1] / "servers" / "rtsp_server.py"
REPEAT = 2  # every frame sent twice: a still viewpoint lasts long enough for a few looks on a busy machine


def has_gst_rtsp() -> bool:
    if not Path(SYSTEM_PYTHON).is_file():
        return False
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('rtpjpegpay') and Gst.ElementFactory.find('appsrc')")
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (Debian: ffmpeg)")
needs_rtsp = pytest.mark.skipif(not has_gst_rtsp(), reason="GStreamer's RTSP server is not installed (Debian: "
                                "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good python3-gi)")


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:port, read from /proc (connecting would be a client)."""
    want = f"0100007F:{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A"
               and (r.split()[1] == want or r.split()[1].startswith("00000000")) for r in rows):
            return True
    return False


def wait_listening(proc: subprocess.Popen, port: int, what: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not listening(port):
        assert proc.poll() is None, f"{what} ended: {proc.stderr.read() if proc.stderr else ''}"
        assert time.time() < deadline, f"{what} did not listen on port {port}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def clip(printed, filmed):
    """The film as an MP4 (each frame twice) and as a folder of JPEG frames."""
    frames, _ = filmed
    path = printed[0] / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, FRAME)
    folder = printed[0] / "clip-frames"
    folder.mkdir(exist_ok=True)
    k = 0
    for f in frames:
        bgr = cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        for _ in range(REPEAT):
            w.write(bgr)
            cv2.imwrite(str(folder / f"{k:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            k += 1
    w.release()
    return path, folder


class Server:
    """A server process, stopped at the end of the block whatever happened."""

    def __init__(self, args: list[str], port: int, what: str):
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port, self.what = port, what

    def __enter__(self) -> "Server":
        try:
            wait_listening(self.proc, self.port, self.what)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def ffmpeg_mjpeg(clip_path: Path, port: int) -> Server:
    return Server(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip_path),
                   "-f", "mpjpeg", "-q:v", "3", "-listen", "1", f"http://127.0.0.1:{port}/video"], port, "ffmpeg")


def gst_rtsp(folder: Path, port: int) -> Server:
    return Server([SYSTEM_PYTHON, str(RTSP_SERVER), str(folder), str(port), str(int(FPS)),
                   str(FRAME[0]), str(FRAME[1])], port, "the RTSP server")


def capture_then_live(printed, filmed, name: str, serve, capsys) -> None:
    """Guided capture of a fresh copy of the run from a server, the run aligned and classified
    from its photos; then live mode on a fresh server of the same kind, with the run's cells."""
    root = copy_run(printed, name)
    port = free_port()
    with serve(port) as srv:
        url = srv.url(port)
        assert main(["capture", str(root), "--source", url, "--timeout", "90", "--headless"]) == 0
    out = capsys.readouterr().out
    assert "every sheet captured" in out, out
    check_picked_sharp(root, filmed[1], 40.0, repeat=REPEAT)
    # the photos go through the rest of the pipeline (the run's YAML, this copy as the run)
    import torch

    from physical.stages.align import align_stage
    from physical.stages.classify import classify_stage
    from physical.runs.checks import load_config
    from physical.rundir import RunDir

    cfg, _ = load_config(printed[1])
    run = RunDir(root)
    align_stage(run, cfg)
    classify_stage(run, cfg, torch.device("cpu"))
    check_aligned_and_classified(root)

    port = free_port()
    logp = root / "live.json"
    with serve(port) as srv:
        assert main(["live", "--source", srv.url(port), "--run", str(root), "--frames", "40", "--headless",
                     "--log", str(logp)]) == 0
    log = json.loads(logp.read_text())
    assert log["summary"]["frames_shown"] == 40
    assert any(r["cells"] for r in log["results"]), "live mode aligned no sheet of the stream"


@needs_ffmpeg
def test_ffmpeg_single_client_mjpeg_server(printed, filmed, clip, capsys):
    def serve(port):
        s = ffmpeg_mjpeg(clip[0], port)
        s.url = lambda p: f"http://127.0.0.1:{p}/video"
        return s

    capture_then_live(printed, filmed, "ffmpeg", serve, capsys)


@needs_rtsp
def test_gstreamer_rtsp_server(printed, filmed, clip, capsys):
    def serve(port):
        s = gst_rtsp(clip[1], port)
        s.url = lambda p: f"rtsp://127.0.0.1:{p}/video"
        return s

    capture_then_live(printed, filmed, "rtsp", serve, capsys)


# ----------------------------------------------------------------------------------------------
# bad streams


def test_a_server_that_sends_no_video_is_named(printed, capsys):
    """An HTTP server answering with a web page (a wrong path on the phone's app): one line naming
    the URL, exit 2, within the timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def answer():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>IP Webcam</body></html>")
                except OSError:
                    pass

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
    root = copy_run(printed, "notvideo")
    try:
        t0 = time.time()
        assert main(["capture", str(root), "--source", url, "--headless"]) == 2
        assert time.time() - t0 < 20
    finally:
        stop.set()
        t.join(5)
        srv.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "no video" in err[0] and "Traceback" not in err[0], err


def test_a_server_that_closes_after_the_first_frame_is_named(filmed, capsys):
    """A camera that sends one frame, then hangs up and goes away (the app closed): live mode
    reconnects as configured, then stops with one line naming the stream, exit 2."""
    frames, _ = filmed
    jpg = encode_jpegs(frames[:1])[0]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/video"

    def one_frame():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
                         + b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg
                         + b"\r\n")
        srv.close()  # and the port goes away

    t = threading.Thread(target=one_frame, daemon=True)
    t.start()
    t0 = time.time()
    rc = main(["live", "--source", url, "--frames", "50", "--headless", "--no-cells"])
    assert rc == 2 and time.time() - t0 < 40
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "stopped delivering frames after 1 frames" in err[0], err
