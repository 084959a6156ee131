"""Predict, then measure: the predicted survival of an adversarial image through K draws of the channel."""
import torch

from physical.channel.crop import CropChannel
from physical.channel.core import Channel
from physical.config import ChannelConfig
from physical.measure.survival import fooled, survival_probabilities

IDENTITY = ChannelConfig(rotation_deg=0, tilt=0, scale=[1, 1], translate=0, blur_sigma=[0, 0], noise_sigma=[0, 0],
                         brightness=[0, 0], contrast=[1, 1], white_balance=0, light_gradient=0,
                         jpeg_quality=[100, 100], paper_white=1, ink_black=0, print_gamma=1)


def _images(model):
    from physical.data.images import load_images
    from physical.models import preprocess, to_tensor

    src = load_images("samples", 3)
    return to_tensor([preprocess(s.rgb, model.input_size, model.resize_ratio) for s in src], "cpu")


def test_identity_channel_predicts_what_the_digital_image_does():
    from physical.models import load_model

    model = load_model("efficientnet_lite0", torch.device("cpu"))
    x = _images(model)
    top1 = model(x).argmax(1)
    # labels: the true class for image 0, another class for 1 and 2 (so the "attack" fools there); one targeted
    labels = torch.tensor([int(top1[0]), int(top1[1]) + 1, int(top1[2]) + 1])
    targets = torch.tensor([-1, -1, int(top1[2])])
    chan = CropChannel(Channel(IDENTITY), cell_px=model.input_size, misalign=0.0)
    gen = torch.Generator().manual_seed(0)
    p = survival_probabilities(model, chan, x, labels, targets, draws=4, generator=gen, batch_size=2)
    assert p.tolist() == fooled(top1, labels, targets).float().tolist() == [0.0, 1.0, 1.0]


def test_a_destructive_channel_changes_the_prediction_and_draws_set_the_resolution():
    from physical.models import load_model

    model = load_model("efficientnet_lite0", torch.device("cpu"))
    x = _images(model)
    top1 = model(x).argmax(1)
    # targeted at the clean prediction: survives an identity channel in every draw; heavy blur and noise break it
    labels, targets = top1 + 1, top1
    harsh = ChannelConfig(blur_sigma=[6, 8], noise_sigma=[0.2, 0.3])
    chan = CropChannel(Channel(harsh), cell_px=model.input_size, misalign=0.1)
    p = survival_probabilities(model, chan, x, labels, targets, draws=5, generator=torch.Generator().manual_seed(1))
    assert p.shape == (3,) and all(abs(v * 5 - round(v * 5)) < 1e-6 for v in p)
    assert p.mean() < 0.7


def test_predict_command_before_printing(tmp_path, capsys):
    from physical.cli.main import main

    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"run: {{name: pre, output: {tmp_path / 'runs'}, batch_size: 8}}\nimages: {{limit: 3}}\n"
                   "attacks: [{name: fgsm, eps: [16]}]\nreport: {predict_draws: 0}\n")
    assert main(["predict", str(cfg)]) == 2  # nothing generated yet
    assert "generate stage has not finished" in capsys.readouterr().err
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "runs" / "pre"), "--draws", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "predicted survival: 4 draws of capture.channel (no calibration) per adversarial image"
    (line,) = [o for o in out if "fgsm_eps16" in o]
    assert "over 3 images" in line and "predicted destroyed" in line
    mean = float(line.split("mean ")[1].split(" %")[0])
    assert 0 <= mean <= 100 and abs(mean * 12 / 100 - round(mean * 12 / 100)) < 0.01  # 3 images x 4 draws
    assert not (tmp_path / "runs" / "pre" / "report").exists()
    assert main(["predict", str(cfg), "--draws", "0"]) == 2
