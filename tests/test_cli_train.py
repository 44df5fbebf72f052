"""The training CLI's error paths, each in a subprocess: exit 2, one 'error:' line, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from host import checkpoint
from host.network import DynamicNet, NetConfig
from tests.unusable_data import CASES, make_unusable_data
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[1]


def run_cli(*flags, tmp_path):
    env = {**os.environ, "DYNEDGE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "host/train.py", *map(str, flags)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0]


def tiny_folder(root):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                cv2.imwrite(str(root / split / cls / f"{i}.png"), np.full((16, 16, 3), 20 * i, np.uint8))
    return root


def test_unknown_arch_lists_choices(tmp_path):
    assert_one_line_error(run_cli("--arch", "vgg", tmp_path=tmp_path), "vgg", "mobilenet", "resnet")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_path_names_it(tmp_path, case):
    """Each unusable data source: one line naming the path and what is wrong, exit 2, no traceback."""
    path = make_unusable_data(tmp_path, case)
    assert_one_line_error(run_cli("--data", path, tmp_path=tmp_path), str(path), CASES[case])


@pytest.mark.parametrize("widths, needle", [("0.5,0.5", "--subnets is 4"), ("0.5,0.3,0.2,0.1", "sum to 1.100")])
def test_bad_widths_refused(tmp_path, widths, needle):
    assert_one_line_error(run_cli("--widths", widths, tmp_path=tmp_path), "--widths", needle)


def test_negative_crop_pad_refused(tmp_path):
    assert_one_line_error(run_cli("--crop-pad", "-1", tmp_path=tmp_path), "--crop-pad", "-1")


@pytest.mark.parametrize("flags, needle", [
    (("--low-res-size", "32"), "below --img-size 32"),
    (("--epochs", "0"), "--epochs must be more than 0"),
    (("--low-res-size", "16", "--low-res-epochs", "3"), "--low-res-epochs 3.0 must be from 0 to --epochs 1"),
])
def test_bad_low_res_schedule_refused(tmp_path, flags, needle):
    assert_one_line_error(run_cli(*flags, tmp_path=tmp_path), needle)


def test_resume_of_another_arch_refused(tmp_path):
    out = tmp_path / "run"
    torch.manual_seed(0)
    checkpoint.save(out, DynamicNet(NetConfig(arch="resnet", num_classes=2, widths=[0.25] * 4)), {})
    result = run_cli("--arch", "mobilenet", "--resume", "--out", out, "--data", tiny_folder(tmp_path / "d"),
                     "--calib-size", "2", tmp_path=tmp_path)
    assert_one_line_error(result, "resnet", "mobilenet", str(out))


def test_run_training_end_to_end_and_resume(tmp_path, monkeypatch):
    """In-process: a tiny run records results in config.json; --resume of a finished run only re-evaluates."""
    from device.flags import Parser
    from host.cli import add_training_args, run_training

    monkeypatch.setenv("DYNEDGE_CACHE", str(tmp_path / "cache"))
    flags = ["--arch", "resnet", "--subnets", "2", "--img-size", "16", "--epochs", "1", "--batch-size", "4",
             "--calib-size", "2", "--data", str(tiny_folder(tmp_path / "d")), "--out", str(tmp_path / "run")]
    parser = add_training_args(Parser())
    result = run_training(parser.parse_args(flags))
    assert len(result.accuracy) == 2 and len(result.calibration["exits"]) == 2
    config = checkpoint.read_config(tmp_path / "run")
    assert config["results"]["test_top1"] == result.accuracy and config["net"]["widths"] == [0.5, 0.5]
    again = run_training(parser.parse_args(flags + ["--resume"]))
    assert [h["epoch"] for h in again.history] == [1]
    torch.testing.assert_close(again.net.head.weight, result.net.head.weight)


def test_epochs_scale_the_presets_phases():
    """--epochs 0.3 on the quick preset (1.5 epochs, 1 of them at low resolution, 0.1 of warm-up)
    keeps the phases' shares; with low resolution off no low-resolution epochs are asked for."""
    from device.flags import Parser
    from host.cli import add_training_args, resolve_settings
    parser = add_training_args(Parser())
    cfg = resolve_settings(parser.parse_args(["--epochs", "0.3"])).train
    assert (cfg.epochs, cfg.low_res_epochs, cfg.warmup_epochs) == pytest.approx((0.3, 0.2, 0.02))
    off = resolve_settings(parser.parse_args(["--epochs", "0.3", "--low-res-size", "0"])).train
    assert (off.low_res_size, off.low_res_epochs) == (0, 0.0)
