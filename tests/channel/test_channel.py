"""The print-and-camera channel, the simulated capture and the folder capture."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from physical.channel.steps import codec
from physical.capture.sources import CaptureError, parse_source
from physical.stages.capture import capture_stage
from physical.channel.core import IDENTITY, Channel
from physical.channel.report import describe
from physical.config import ChannelConfig, Config
from physical.rundir import RunDir, read_image, read_json, write_image
from physical.sim.print_camera import simulate_stage

torch.set_num_threads(2)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def geometry_only() -> ChannelConfig:
    """Every transform but geometry off: the way a config turns a transform off is its identity range."""
    return ChannelConfig(
        blur_sigma=[0.0, 0.0], noise_sigma=[0.0, 0.0], brightness=[0.0, 0.0], contrast=[1.0, 1.0],
        white_balance=0.0, light_gradient=0.0, jpeg_quality=[100.0, 100.0],
        paper_white=1.0, ink_black=0.0, print_gamma=1.0,
    )


def all_off() -> ChannelConfig:
    return dataclasses.replace(geometry_only(), rotation_deg=0.0, tilt=0.0, scale=[1.0, 1.0], translate=0.0)


# -- channel ----------------------------------------------------------------------------------


def test_identity_gives_the_input_back():
    x = torch.rand(3, 3, 40, 56)
    ch = Channel()
    for params in (ch.identity_params(3), ch.sample(3, generator=gen(), strength=0.0)):
        y, hom = ch(x, params)
        assert torch.allclose(y, x, atol=1e-4)
        assert torch.allclose(hom, torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-9)


def test_off_ranges_give_the_identity_and_are_described_as_off():
    ch = Channel(all_off())
    x = torch.rand(2, 3, 33, 47)  # sizes that are not multiples of 16
    y, _ = ch(x, ch.sample(2, generator=gen(1)))
    assert torch.allclose(y, x, atol=1e-4)
    text = describe(ch)
    for name in IDENTITY:
        if name != "light_angle_deg":
            assert f"{name}: off" in text
    assert "light_angle_deg" not in text


def test_jpeg_quality_100_means_no_jpeg_and_below_100_codes():
    ch = Channel()
    x = torch.rand(2, 3, 37, 29)
    p = ch.identity_params(2)
    assert torch.equal(codec.apply(x, p), x)
    p["jpeg_quality"] = torch.tensor([100.0, 50.0])
    y = codec.apply(x, p)
    assert torch.equal(y[0], x[0]) and not torch.allclose(y[1], x[1], atol=1e-2)
    assert y.shape == x.shape


def test_same_seed_same_output_other_seed_other_output():
    ch = Channel()
    x = torch.rand(4, 3, 48, 48)
    a, ha = ch(x, ch.sample(4, generator=gen(7)))
    b, hb = ch(x, ch.sample(4, generator=gen(7)))
    c, _ = ch(x, ch.sample(4, generator=gen(8)))
    assert torch.equal(a, b) and torch.equal(ha, hb)
    assert not torch.allclose(a, c)


def test_gradients_flow_through_the_whole_chain():
    ch = Channel()
    x = (0.2 + 0.6 * torch.rand(4, 3, 48, 48)).requires_grad_()
    params = ch.sample(4, generator=gen(3))
    assert float(params["jpeg_quality"].max()) < 100 and float(params["noise_sigma"].min()) > 0
    y, _ = ch(x, params)
    (y * torch.randn_like(y)).sum().backward()
    g = x.grad
    assert torch.isfinite(g).all()
    assert (g.flatten(1).abs().sum(1) > 0).all()  # every sample of the batch gets a gradient


def test_eot_gives_n_copies_per_image_with_gradients():
    ch = Channel()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = ch.eot(x, 3, generator=gen())
    assert y.shape == (6, 3, 32, 32)
    y[:3].sum().backward()  # the first image's copies only
    assert x.grad[0].abs().sum() > 0 and x.grad[1].abs().sum() == 0


def test_b_images_with_k_draws_each_match_the_repeated_batch():
    """EOT's shape: B images and B x k parameter sets (image-major). The printer runs once per image
    there; pixels and gradients must be those of the B x k repeated images."""
    ch = Channel()
    x = (0.1 + 0.8 * torch.rand(2, 3, 48, 48)).requires_grad_()
    params = ch.sample(6, generator=gen(5))
    w = torch.randn(6, 3, 48, 48)
    y, _ = ch(x, params)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    xr = x.detach().repeat_interleave(3, 0).requires_grad_()
    yr, _ = ch(xr, params)
    (gr,) = torch.autograd.grad((yr * w).sum(), xr)
    assert torch.allclose(y, yr, atol=1e-6)
    assert torch.allclose(g, gr.view(2, 3, 3, 48, 48).sum(1), atol=1e-5)
    with pytest.raises(ValueError, match="4 images but 6 parameter sets"):
        ch(torch.rand(4, 3, 48, 48), params)


def test_jpeg_gradient_is_the_straight_through_gradient_of_the_codec():
    """The codec's backward is written out (the DCTs cancel under straight-through rounding); it
    must equal autograd through the codec step by step, for block-aligned and padded sizes."""
    from physical.channel.jpeg import codec, differentiable_jpeg

    for shape in ((3, 3, 64, 48), (2, 3, 37, 50)):
        x = torch.rand(*shape, requires_grad=True)
        q = torch.tensor([60.0, 85.0, 95.0][: shape[0]])
        w = torch.randn(shape)
        (fast,) = torch.autograd.grad((differentiable_jpeg(x, q) * w).sum(), x)
        (ref,) = torch.autograd.grad((codec(x, q) * w).sum(), x)
        assert torch.equal(differentiable_jpeg(x, q), codec(x, q).detach())
        assert (fast - ref).abs().max() < 1e-5 * ref.abs().max()


def test_the_channels_clamp_passes_the_gradient_inside_and_on_its_bounds():
    """clamp01 (the codec's and the channel's last clamp) keeps a mask for its backward. Its value
    is torch's clamp's; its gradient is 1 inside [0, 1] and on the bounds (torch's clamp gives 0 on
    them), so a channel at strength 0 passes the gradient of a white or black pixel whole."""
    from physical.transforms.ops import clamp01

    x = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.7, float("inf")]).repeat(2, 1).requires_grad_()
    w = torch.randn(x.shape)
    (mine,) = torch.autograd.grad((clamp01(x) * w).sum(), x)
    assert torch.equal(clamp01(x), x.clamp(0.0, 1.0))
    assert torch.equal(mine, w * torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))
    assert torch.equal(clamp01(x.detach()), x.detach().clamp(0.0, 1.0))


def test_homography_maps_an_input_point_to_where_its_pixel_lands():
    ch = Channel(geometry_only())
    x = torch.zeros(1, 3, 120, 90)
    px, py = 61, 37
    x[:, :, py - 1 : py + 2, px - 1 : px + 2] = 1.0  # a 3x3 bright blob centred on (px, py)
    params = ch.sample(5, generator=gen(11))
    y, hom = ch(x, params, out_size=(200, 160), background=0.0)
    assert y.shape == (5, 3, 160, 200)
    for i in range(5):
        q = hom[i].numpy() @ np.array([px, py, 1.0])
        q = q[:2] / q[2]
        img = y[i, 0].numpy()
        rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
        w = img / img.sum()
        centroid = np.array([(w * cols).sum(), (w * rows).sum()])
        assert np.linalg.norm(centroid - q) < 0.5, (i, centroid, q)


@pytest.mark.parametrize("frame", [(1600, 1200), (1200, 1600), (640, 640)])
def test_default_ranges_keep_the_whole_sheet_in_the_frame(frame):
    ch = Channel()
    h, w = 1754, 1241  # A4 at 150 dpi
    hom = ch.homographies(ch.sample(500, generator=gen(5)), (w, h), frame)
    corners = torch.tensor([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]], dtype=torch.float64)
    q = torch.einsum("nij,kj->nki", hom, corners)
    assert (q[..., 2] > 0).all()
    q = q[..., :2] / q[..., 2:]
    assert (q[..., 0] >= -0.5 - 1e-6).all() and (q[..., 0] <= frame[0] - 0.5 + 1e-6).all()
    assert (q[..., 1] >= -0.5 - 1e-6).all() and (q[..., 1] <= frame[1] - 0.5 + 1e-6).all()
    # and it fills a good part of it: scale >= 0.7 of the largest fit
    span = (q.amax(1) - q.amin(1)) / torch.tensor(frame, dtype=torch.float64)
    assert (span.amax(1) > 0.65).all()


def test_placement_covers_the_frame_with_the_background_elsewhere():
    ch = Channel(geometry_only())
    x = torch.ones(1, 3, 60, 40)
    p = ch.identity_params(1)
    p["scale"] = torch.tensor([0.5])
    y, _ = ch(x, p, out_size=(100, 80), background=torch.tensor([0.2, 0.3, 0.4]))
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.2, 0.3, 0.4]))
    assert torch.allclose(y[0, :, 40, 50], torch.ones(3))
    covered = (y[0, 0] > 0.99).float().sum()
    # scale 0.5 of the largest fit (80 px high): the image is 40 px high and 40 * 40 / 60 px wide
    assert abs(float(covered) - 40 * (40 * 40 / 60)) < 60


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    ch = Channel()
    x = torch.rand(2, 3, 64, 64)
    p = ch.sample(2, generator=gen())
    p["noise_sigma"] = torch.zeros(2)  # the noise stream is per device
    a, _ = ch(x, p)
    b, _ = ch(x.cuda(), {k: v.cuda() for k, v in p.items()})
    assert torch.allclose(a, b.cpu(), atol=2e-3)


# -- capture: simulate ------------------------------------------------------------------------

A4_PT = (595.2756, 841.8898)


def make_run(tmp_path: Path, seed: int = 0) -> tuple[RunDir, Config]:
    from reportlab.pdfgen import canvas

    run = RunDir(tmp_path / "run")
    (run.root / "print").mkdir(parents=True)
    c = canvas.Canvas(str(run.root / "print" / "sheets.pdf"), pagesize=A4_PT)
    c.setFillColorRGB(0, 0, 0)
    c.rect(100, A4_PT[1] - 300, 200, 200, fill=1, stroke=0)  # a black square, 100..300 pt from top-left
    c.showPage()
    c.save()
    cfg = Config()
    cfg.run.seed = seed
    cfg.run.device = "cpu"
    cfg.capture.dpi = 40.0
    cfg.capture.frame = [320, 240]
    cfg.capture.photos_per_sheet = 2
    return run, cfg


def test_simulate_stage_writes_reproducible_frame_size_jpegs(tmp_path):
    run, cfg = make_run(tmp_path)
    assert simulate_stage(run, cfg) == {"photos": 2, "source": "simulate"}
    names = sorted(p.name for p in run.photos_dir.iterdir())
    assert names == ["sheet000-0.jpg", "sheet000-1.jpg"]
    first = [read_image(run.photos_dir / n) for n in names]
    for n, img in zip(names, first):
        assert (run.photos_dir / n).read_bytes()[:3] == b"\xff\xd8\xff"
        assert img.shape == (240, 320, 3)
    assert not np.array_equal(first[0], first[1])

    truth = read_json(run.root / "capture" / "simulated.json")
    for rec, img in zip(truth["photos"], first):
        hom = np.array(rec["homography_mm"])
        q = hom @ np.array([200 * 25.4 / 72, 200 * 25.4 / 72, 1.0])  # the black square's centre
        x, y = (q[:2] / q[2]).round().astype(int)
        assert img[y, x].mean() < 80, "the square is not where the ground truth puts it"
        assert 1 <= rec["jpeg_quality"] <= 100 and rec["file"].startswith("capture/photos/")

    simulate_stage(run, cfg)  # same seed: same photos
    for n, img in zip(names, first):
        assert np.array_equal(read_image(run.photos_dir / n), img)
    cfg.run.seed = 1
    simulate_stage(run, cfg)
    assert not np.array_equal(read_image(run.photos_dir / names[0]), first[0])


def test_simulate_without_a_pdf_says_to_print_first(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="print stage"):
        simulate_stage(run, Config())


def test_capture_stage_simulate_replaces_old_photos(tmp_path):
    run, cfg = make_run(tmp_path)
    write_image(run.photos_dir / "old.png", np.zeros((8, 8, 3), np.uint8))
    assert capture_stage(run, cfg)["photos"] == 2
    assert not (run.photos_dir / "old.png").exists()


# -- capture: folder --------------------------------------------------------------------------


def photo_folder(tmp_path: Path) -> Path:
    src = tmp_path / "phone"
    src.mkdir()
    write_image(src / "IMG_0001.jpg", np.full((20, 30, 3), 128, np.uint8))
    write_image(src / "b.PNG", np.zeros((10, 10, 3), np.uint8))
    (src / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(20))
    (src / "fake.jpg").write_bytes(b"not a jpeg at all")
    (src / "notes.txt").write_text("hello")  # not a photo, and not taken for one: no line
    (src / "sheets.pdf").write_bytes(b"%PDF-1.4 the run's sheets, dropped in by mistake")
    (src / "VID_0003.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return src


def test_folder_capture_copies_photos_and_reports_skipped(tmp_path):
    src = photo_folder(tmp_path)
    run = RunDir(tmp_path / "run")
    write_image(run.photos_dir / "stale.jpg", np.zeros((8, 8, 3), np.uint8))
    cfg = Config(base_dir=str(tmp_path))
    for source in ("folder:phone", "phone", str(src)):  # relative to the config's folder, plain, absolute
        cfg.capture.source = source
        summary = capture_stage(run, cfg)
        assert summary["photos"] == 2 and summary["source"] == "folder"
        assert sorted(p.name for p in run.photos_dir.iterdir()) == ["IMG_0001.jpg", "b.PNG"]
        assert (run.photos_dir / "IMG_0001.jpg").read_bytes() == (src / "IMG_0001.jpg").read_bytes()
        skipped = {s["file"]: s["reason"] for s in summary["skipped"]}
        assert set(skipped) == {"IMG_0002.HEIC", "fake.jpg", "sheets.pdf", "VID_0003.mp4"}
        assert "HEIC" in skipped["IMG_0002.HEIC"]
        assert skipped["sheets.pdf"].startswith("a PDF, not a photo")
        assert skipped["VID_0003.mp4"].startswith("a video, not a photo") and "video:" in skipped["VID_0003.mp4"]


def test_folder_capture_errors_name_the_folder(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = Config(base_dir=str(tmp_path))
    cfg.capture.source = "folder:missing"
    with pytest.raises(CaptureError, match="missing.*does not exist"):
        capture_stage(run, cfg)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    cfg.capture.source = "empty"
    with pytest.raises(CaptureError, match="empty holds no photos"):
        capture_stage(run, cfg)


@pytest.mark.parametrize("source,kind", [("0", "webcam"), ("webcam:1", "webcam"), ("http://127.0.0.1:8080/video", "url"), ("clip.mp4", "video")])
def test_other_sources_are_recognised(tmp_path, source, kind):
    """Webcams, URLs and videos go to guided capture (tests/capture_live/test_capture_live.py), which needs the
    printed sheets first."""
    cfg = Config(base_dir=str(tmp_path))
    cfg.capture.source = source
    assert parse_source(source, cfg.resolve).kind == kind
    with pytest.raises(FileNotFoundError, match="print stage"):
        capture_stage(RunDir(tmp_path / "run"), cfg)


def test_simulated_photos_of_printed_sheets_align(tmp_path):
    """print -> simulate -> align: every cell of a real sheet is found in the simulated photos."""
    from physical.stages.align import align_stage
    from physical.stages.printing import print_stage

    cfg = Config(base_dir=str(tmp_path))
    cfg.run.name, cfg.run.device = "t", "cpu"
    run = RunDir(tmp_path / "runs" / "t")
    run.init({"run": {"name": "t"}}, 0, "cpu")
    rng = np.random.default_rng(0)
    items = []
    for k in range(3):  # 6 cells: one A4 sheet
        clean, adv = f"generate/clean/img{k}.png", f"generate/adv/img{k}.png"
        for rel in (clean, adv):
            write_image(run.root / rel, rng.integers(30, 226, (224, 224, 3), dtype=np.uint8))
        items.append({"key": f"img{k}", "model": "m", "attack": "bim", "eps": 16.0, "image": f"img{k}", "clean": clean, "adv": adv})
    (run.root / "generate" / "index.json").write_text(__import__("json").dumps({"items": items}))
    print_stage(run, cfg)
    assert capture_stage(run, cfg) == {"photos": 1, "source": "simulate"}
    summary = align_stage(run, cfg)
    assert summary["skipped"] == 0
    assert summary["cells_found"] == summary["cells_expected"] == 6
