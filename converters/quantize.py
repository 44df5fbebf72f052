"""int8 post-training quantization through litert-torch's PT2E path, calibrated on real images.

Static int8: symmetric weights, per-tensor activations observed with histograms on real
training images. Each stage's file is calibrated on the inputs it meets on the board: images
where it takes the image, else the float outputs of the stages that feed it (for concat: the
trunk tensor and cached features for subnet k). The image input
stays float32, but litert-torch folds boundary quantize/dequantize ops into the signature, so the
trunk tensor, f_k and logits can be int8 with a (scale, zero point): the runtime (de)quantizes
them, as the board engine's stages do (device/engine/stage.py, Port).

Why these choices (measured on the 32 px MobileNet, widths 0.25 x 4, `converters/flatbuffer.py`):
- strict torch.export: litert-torch finds residual adds through `source_fn_stack`, which only
  strict export records. Non-strict export left all 10 ADDs per subnet float, between 13
  DEQUANTIZE and 9-10 QUANTIZE ops; strict export leaves none.
- per-tensor weights by default: per-channel parameters cost 24 bytes per output channel (scale
  float32 + zero point int64, for the weight and again for the int32 bias), and the 0.25-width
  layers hold 9 (depthwise) to a few hundred weights per channel: 432 KB of parameters against
  643 KB of int8 weights over the bundle, size ratio 0.45 vs 0.29 per-tensor, at equal top-1
  (bench/results/convert_bundle.md). `per_channel=True` remains for models that lose more.
Chosen over ai-edge-quantizer's static_wi8_ai8 recipe on the fp32 files: that one quantizes in
seconds and ran no faster, but it wrote subnet_k (k >= 2) files whose signature output f_k pointed
at a tensor it had replaced (f_k also feeds the concatenation), so the signature runner failed
with "Tensor data is null" (ai-edge-quantizer 0.10, measured 2026-11-22).
"""
from pathlib import Path

import numpy as np
import torch

from converters.export import ExitStatistics, convert_module
from device.bundle.manifest import IMAGE

INT8_SUFFIX = "_int8"


@torch.no_grad()
def calibration_inputs(plan, images: np.ndarray) -> dict:
    """Per stage name, the list of one-image input tuples it sees on the board (float32, NHWC),
    running the plan's stages in order on `images` (N, H, W, 3)."""
    outputs = {IMAGE: torch.from_numpy(images).float()}
    inputs = {}
    for stage in plan.stages:
        feeds = [outputs[source] for source in stage.inputs]
        inputs[stage.name] = [tuple(feed[i:i + 1] for feed in feeds) for i in range(len(images))]
        result = stage.module.eval()(*feeds)
        result = result if isinstance(result, tuple) else (result,)
        outputs.update({f"{stage.name}.{name}": tensor for name, tensor in zip(stage.outputs, result)})
    return inputs


def quantize_module(module, samples: list, path: Path, name: str, per_channel: bool = False) -> Path:
    """PT2E: export, insert observers, run the calibration samples, convert, lower to int8 TFLite."""
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    # torch.export records module types as "module.QualName" strings, which the quantizer's
    # module-type filter compares against: the exit statistics stay float (an int8 entropy
    # saturated at its calibrated range).
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=per_channel)).set_module_type(
        f"{ExitStatistics.__module__}.{ExitStatistics.__qualname__}", None)
    graph = torch.export.export(module.eval(), samples[0], strict=True).module()
    graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for args in samples:
            graph(*args)
    graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
    return convert_module(graph, samples[0], path, f"{name} (int8)", QuantConfig(pt2e_quantizer=quantizer))


def export_int8(plan, calib_images: np.ndarray, out_dir: Path, per_channel: bool = False) -> dict:
    """<stage>_int8.tflite for every stage of `plan` in `out_dir`, calibrated on `calib_images`
    (N, H, W, 3); returns {stage name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = calibration_inputs(plan, calib_images)
    return {stage.name: quantize_module(stage.module, samples[stage.name], out_dir / f"{stage.name}{INT8_SUFFIX}.tflite",
                                        stage.name, per_channel) for stage in plan.stages}
