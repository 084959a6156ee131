"""A real RTSP server for the stream tests: GStreamer's gst-rtsp-server (Debian: gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good, python3-gi), run with the system python3.

    /usr/bin/python3 rtsp_server.py FOLDER PORT FPS WIDTH HEIGHT

serves the JPEG frames of FOLDER (by name, in a loop, at FPS) as RTP/JPEG at rtsp://127.0.0.1:PORT/video
and prints "ready" once it listens.
"""
import sys
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
folder, port, fps, width, height = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
frames = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]


class Factory(GstRtspServer.RTSPMediaFactory):
    def do_create_element(self, url):
        return Gst.parse_launch(f"( appsrc name=src is-live=true format=time caps=image/jpeg,width={width},height={height},framerate={fps}/1 "
                                "! rtpjpegpay name=pay0 pt=26 )")

    def do_configure(self, media):
        src = media.get_element().get_child_by_name("src")
        state = {"i": 0, "t0": time.monotonic()}

        def need_data(appsrc, length):  # paced: a camera sends its frames in real time
            i = state["i"]
            wait = state["t0"] + i / fps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            buf = Gst.Buffer.new_wrapped(frames[i % len(frames)])
            buf.pts = buf.dts = i * Gst.SECOND // fps
            buf.duration = Gst.SECOND // fps
            state["i"] = i + 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)


server = GstRtspServer.RTSPServer()
server.set_service(port)
server.set_address("127.0.0.1")
factory = Factory()
factory.set_shared(True)
server.get_mount_points().add_factory("/video", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
