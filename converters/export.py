"""PyTorch -> TFLite with litert-torch: the trunk, one file per subnet step, and a monolith.

The board feeds NHWC RGB pixels (0..255 float32) and keeps the trunk tensor between
subnet steps. PyTorch convolutions are NCHW and litert-torch lowers them to NHWC TFLite
ops with a transpose on either side; we hand the trunk tensor over in NHWC, so the
trunk's trailing permute and each subnet's leading permute meet the converter's own
transposes and cancel. Measured on the 32 px MobileNet: NHWC hand-over leaves 0 TRANSPOSE
ops in trunk.tflite and subnet_1.tflite, an NCHW hand-over leaves 1 in each (trunk 0.063 vs
0.066 ms, subnet_1 equal within noise at 32 px; the gap grows with the trunk tensor).
"""
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from device.errors import UserError
from converters.flatbuffer import strip_tensor_names


class ExportError(UserError, RuntimeError):
    """litert-torch could not lower one module; the message names it."""


class TrunkExport(nn.Module):
    """trunk.tflite: image (1, H, W, 3) RGB 0..255 -> trunk tensor (1, h, w, C), NHWC both sides."""

    def __init__(self, net):
        super().__init__()
        self.trunk = net.trunk

    def forward(self, image_nhwc):
        return self.trunk(image_nhwc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ExitStatistics(nn.Module):
    """logits (1, classes) -> (1, 3) float: [softmax entropy in nats, top-1 probability, top-1 class].

    The board decides every exit on the entropy and answers with the other two. Inside the
    subnet file they are a few builtin ops of the invoke; computed in Python after the invoke,
    whose weights have just evicted the Python interpreter's code and data from the CPU caches,
    they were one of the largest parts of the board loop's own cost. The formula is
    device.policy.exits.softmax_entropy's. The int8 quantizer leaves this module in float
    (converters.quantize).
    """

    def forward(self, logits):
        log_p = torch.log_softmax(logits, dim=-1)
        p = torch.exp(log_p)
        return torch.cat([-(p * log_p).sum(dim=-1, keepdim=True), p.amax(dim=-1, keepdim=True),
                          logits.argmax(dim=-1, keepdim=True).to(torch.float32)], dim=-1)


class SubnetExport(nn.Module):
    """subnet_k.tflite: (trunk tensor NHWC, cached [f_1..f_{k-1}]) -> ([f_1..f_k], logits_k,
    exit statistics) via net.subnet_step and ExitStatistics.

    Only branch k and the head are reached, so the converter keeps no other branch's weights.
    """

    def __init__(self, net, k: int):
        super().__init__()
        self.net = net
        self.k = k
        self.exit_statistics = ExitStatistics()

    def forward(self, trunk_nhwc, cached=None):
        features, logits = self.net.subnet_step(trunk_nhwc.permute(0, 3, 1, 2), cached, self.k)
        return features, logits, self.exit_statistics(logits)


class MonolithExport(nn.Module):
    """The largest subnet as one file (image -> logits): the baseline the split is measured against."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image_nhwc):
        return self.net.forward_subnet(image_nhwc.permute(0, 3, 1, 2), self.net.num_subnets)


@dataclass
class ExportedFiles:
    trunk: Path
    subnets: list  # [Path] for k = 1..K


def trunk_shape(net) -> tuple:
    """NHWC shape of the trunk tensor for one image."""
    size = net.cfg.img_size
    with torch.no_grad():
        out = TrunkExport(net).eval()(torch.zeros(1, size, size, 3))
    return tuple(out.shape)


def sample_inputs(net, k: int | None) -> tuple:
    """Tracing inputs: the image for the trunk (k None), else subnet k's (trunk tensor[, cached])."""
    size = net.cfg.img_size
    if k is None:
        return (torch.rand(1, size, size, 3) * 255.0,)
    t = torch.randn(trunk_shape(net))
    return (t,) if k == 1 else (t, torch.randn(1, net.feature_offsets[k - 1]))


def convert_module(module: nn.Module, args: tuple, path: Path, name: str, quant_config=None) -> Path:
    """Lower one module (already in eval mode) to `path` without its debug tensor names
    (converters.flatbuffer); a converter failure becomes ExportError naming `name`."""
    import litert_torch  # heavy import, only when converting

    try:
        edge = litert_torch.convert(module, args, quant_config=quant_config)
        edge.export(str(path))
    except Exception as err:  # litert-torch raises many types; the user needs the module name
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"litert-torch cannot lower {name} ({type(module).__name__}): {first}") from err
    return strip_tensor_names(path)


def export_fp32(net, out_dir: Path) -> ExportedFiles:
    """Write trunk.tflite and subnet_1..K.tflite (float32) into `out_dir`."""
    net = net.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    trunk = convert_module(TrunkExport(net).eval(), sample_inputs(net, None), out_dir / "trunk.tflite", "trunk")
    subnets = [
        convert_module(SubnetExport(net, k).eval(), sample_inputs(net, k), out_dir / f"subnet_{k}.tflite", f"subnet_{k}")
        for k in range(1, net.num_subnets + 1)
    ]
    return ExportedFiles(trunk, subnets)


def export_monolith(net, path: Path) -> Path:
    """The largest subnet in one file, for the split-cost benchmark."""
    return convert_module(MonolithExport(net.eval()), sample_inputs(net, None), path, "monolith")
