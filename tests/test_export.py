"""Export and parity: signatures and layouts of the exported files, parity that fails loudly.

The tiny bundle (tests/fixtures_bundle.py) was exported and parity-checked by host/build.py;
these tests look at what it produced and make the checks fail on purpose.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter

from converters.export import ExitStatistics, ExportError, convert_module
from converters.flatbuffer import anatomy
from converters.parity import ParityError, check_fp32, check_int8, measure, torch_reference
from converters.quantize import calibration_inputs, quantize_module
from device.bundle import load_bundle
from device.engine import Cascade
from device.engine.outputs import ModelFile
from device.policy.exits import softmax_entropy
from host import checkpoint, methods
from host.methods.concat import TrunkExport, trunk_shape
from host.network import InvertedResidual
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "model" / "manifest.json").read_text())


def test_files_have_the_manifest_signatures_and_nhwc_layout(tiny_bundle):
    m = manifest_of(tiny_bundle)
    model = tiny_bundle / "model"
    size = m["input"]["height"]
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    assert m["method"] == "concat"
    trunk = ModelFile(model / "trunk.tflite").stage
    assert list(trunk.inputs) == ["args_0"]
    assert trunk.port("input", "args_0").shape == (1, size, size, 3)
    assert trunk.port("output", "output_0").shape == trunk_shape(net)
    assert [s["name"] for s in m["stages"]] == ["trunk", "subnet_1", "subnet_2", "subnet_3"]
    for k, entry in enumerate(m["stages"][1:], start=1):
        stage = ModelFile(model / f"subnet_{k}.tflite").stage
        assert [f["from"] for f in entry["inputs"]] == ["trunk.features"] + ([f"subnet_{k - 1}.features"] if k > 1 else [])
        assert sorted(stage.inputs) == (["args_0"] if k == 1 else ["args_0", "args_1"])
        if k > 1:
            assert stage.port("input", "args_1").shape[1] == net.feature_offsets[k - 1]
        assert entry["outputs"] == {"features": "output_0", "logits": "output_1", "statistics": "output_2"}
        assert stage.port("output", "output_0").shape[1] == net.feature_offsets[k]  # [f_1..f_k]
        assert stage.port("output", "output_1").shape[1] == len(m["labels"])
        stats = stage.port("output", "output_2")
        assert stats.shape == (1, 3) and stats.dtype == np.float32
    assert [e["stages"] for e in m["exits"]] == [["trunk", *[f"subnet_{j}" for j in range(1, k + 1)]] for k in (1, 2, 3)]


def test_exit_statistics_file_matches_numpy_from_unsure_to_confident(tmp_path):
    """The exit statistics module as TFLite: entropy, top-1 probability and class of logits from
    near uniform to one class far ahead (a naive softmax would overflow or take log(0))."""
    logits = np.random.default_rng(0).standard_normal((1, 10)).astype(np.float32)
    path = convert_module(ExitStatistics().eval(), (torch.from_numpy(logits),), tmp_path / "stats.tflite", "stats")
    stats_file = ModelFile(path)
    for scale in (0.01, 1.0, 40.0):
        scaled = logits * scale
        (stats,) = stats_file(scaled)
        p = np.exp(scaled[0].astype(np.float64) - scaled.max())
        assert stats.shape == (1, 3) and stats[0, 2] == scaled.argmax()
        assert stats[0, 0] == pytest.approx(float(softmax_entropy(scaled.astype(np.float64))[0]), abs=1e-5)
        assert stats[0, 1] == pytest.approx(float(p.max() / p.sum()), abs=1e-6)


def test_files_keep_only_their_input_and_output_tensor_names(tiny_bundle):
    """Debug names are stripped; the boundary names stay for runtimes that find tensors by name."""
    for path in sorted((tiny_bundle / "model").glob("*.tflite")):
        interpreter = Interpreter(model_path=str(path))
        boundary = interpreter.get_input_details() + interpreter.get_output_details()
        assert all(d["name"].startswith("serving_default_") for d in boundary), path.name
        named = [d["name"] for d in interpreter.get_tensor_details() if d["name"]]
        assert sorted(named) == sorted(d["name"] for d in boundary), path.name
        assert anatomy(path)["names"] < 200, path.name


def test_build_recorded_fp32_parity_within_thresholds(tiny_bundle):
    parity = manifest_of(tiny_bundle)["precisions"]["fp32"]["parity"]
    assert set(parity) == {"subnet_1.tflite", "subnet_2.tflite", "subnet_3.tflite"}  # the answering files
    for figures in parity.values():
        assert figures["top1_agreement"] >= 0.999
        assert figures["max_abs_logit_diff"] <= 1e-3 * figures["logit_range"]
        assert figures["exit_agreement"] >= 0.999
    for k in (1, 2, 3):  # the files' own entropies, on which the board decides, are PyTorch's
        assert parity[f"subnet_{k}.tflite"]["max_abs_entropy_diff"] < 1e-4


def test_parity_names_the_file_that_disagrees(tiny_bundle):
    """Weights changed after export: parity must fail and name a file, not pass quietly."""
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    with torch.no_grad():
        for param in net.branches[1].parameters():  # subnet_2's branch only
            param.mul_(-3.0)
    with np.load(tiny_bundle / "model" / "eval.npz") as data:
        images, labels = np.concatenate([data["images"]] * 2), np.concatenate([data["labels"]] * 2)
    engine = Cascade(load_bundle(tiny_bundle), threads=1)
    parity, _ = measure(engine, torch_reference(net, images), images, labels, np.array([0.5, 0.5, np.inf]))
    assert parity["subnet_1.tflite"]["max_abs_logit_diff"] < 1e-4
    with pytest.raises(ParityError, match="subnet_2.tflite"):
        check_fp32(parity)


def test_int8_check_names_a_file_that_loses_accuracy():
    fp32 = {"subnet_1.tflite": {"top1": 0.80}, "subnet_2.tflite": {"top1": 0.70}}
    int8 = {"subnet_1_int8.tflite": {"top1": 0.795}, "subnet_2_int8.tflite": {"top1": 0.68}}
    with pytest.raises(ParityError, match="subnet_2_int8.tflite"):
        check_int8(int8, fp32)


def test_parity_refuses_fewer_than_1000_images(tiny_bundle):
    engine = Cascade(load_bundle(tiny_bundle), threads=1)
    with pytest.raises(ValueError, match="1000"):
        measure(engine, np.zeros((3, 10, 10)), np.zeros((10, 32, 32, 3), np.uint8), np.zeros(10, np.int64),
                np.array([np.inf] * 3))


class FourierBlock(torch.nn.Module):
    """Complex tensors: litert-torch cannot lower them."""

    def forward(self, x):
        return torch.fft.rfft(x).real


def test_a_module_litert_cannot_lower_is_named(tmp_path):
    with pytest.raises(ExportError, match="cannot lower branch_7 .*FourierBlock"):
        convert_module(FourierBlock().eval(), (torch.rand(1, 8),), tmp_path / "x.tflite", "branch_7")


def test_trunk_shape_is_nhwc(tiny_bundle):
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    assert trunk_shape(net) == (1, 32, 32, 64)


def test_int8_trunk_tracks_pytorch_through_int8_boundaries(tiny_bundle, tmp_path):
    """PT2E int8 on real images; ModelFile (de)quantizes int8 boundary tensors so callers see float."""
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    with np.load(tiny_bundle / "model" / "eval.npz") as data:
        images = data["images"][:32]
    samples = calibration_inputs(methods.get("concat").export_plan(net), images)["trunk"]
    path = quantize_module(TrunkExport(net).eval(), samples, tmp_path / "trunk_int8.tflite", "trunk")
    int8 = ModelFile(path)
    assert path.name == "trunk_int8.tflite"
    with torch.no_grad():
        expected = TrunkExport(net).eval()(torch.from_numpy(images[:4]).float()).numpy()
    got = np.concatenate([int8(img[None].astype(np.float32))[0] for img in images[:4]])
    scale = int8.stage.port("output", "output_0").scale
    assert got.dtype == np.float32 and got.shape == expected.shape
    # Error in output quantization steps. Requantizing at every layer adds up, so single
    # elements drift a few steps (3.65 seen); a wrong scale or zero point would be off by a
    # good part of the ~250-step range.
    steps = np.abs(got - expected) / scale
    assert steps.mean() <= 0.5
    assert steps.max() <= 6.0


class ResidualStep(torch.nn.Module):
    """One MobileNetV2 residual block between NHWC boundaries, like a subnet's body."""

    def __init__(self):
        super().__init__()
        self.block = InvertedResidual(8, 8, 1, 6)

    def forward(self, x):
        return self.block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@pytest.mark.parametrize("per_channel, scales", [(False, {1}), (True, {48, 8})])
def test_int8_residual_block_has_no_float_island(tmp_path, per_channel, scales):
    """The residual ADD is int8 too (no DEQUANTIZE/QUANTIZE inside), weights per-tensor unless asked."""
    torch.manual_seed(0)
    module = ResidualStep().eval()
    samples = [(torch.randn(1, 8, 8, 8),) for _ in range(16)]
    path = quantize_module(module, samples, tmp_path / "block_int8.tflite", "block", per_channel=per_channel)
    parts = anatomy(path)
    assert parts["ops"].get("ADD") == 1
    assert "DEQUANTIZE" not in parts["ops"] and "QUANTIZE" not in parts["ops"], parts["ops"]
    assert parts["float32"] == 0
    assert set(parts["weight_scales"]) == scales
    with torch.no_grad():
        expected = module(samples[0][0]).numpy()
    got = ModelFile(path)(samples[0][0].numpy())[0]
    assert np.abs(got - expected).max() <= 0.1 * np.abs(expected).max()
