"""The kit's own method (seed 000, `--method concat`): trunk once, branches concatenated.

Exit k = trunk + subnet_1..k, where subnet_k runs branch k on the trunk tensor and the head on
[f_1..f_k] (host/network.py). Escalating from exit k to k+1 runs subnet_{k+1} alone: the trunk
tensor and [f_1..f_k] are reused from the frame's earlier stages.

The trunk tensor is handed over in NHWC. PyTorch convolutions are NCHW and litert-torch lowers
them to NHWC TFLite ops with a transpose on either side, so the trunk's trailing permute and
each subnet's leading permute meet the converter's own transposes and cancel. Measured on the
32 px MobileNet: NHWC hand-over leaves 0 TRANSPOSE ops in trunk.tflite and subnet_1.tflite, an
NCHW hand-over leaves 1 in each (trunk 0.063 vs 0.066 ms; the gap grows with the trunk tensor).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from converters.export import ExitStatistics, convert_module
from host.methods.base import IMAGE, ExitExport, ExportPlan, Method, StageExport
from host.network import DynamicNet


class TrunkExport(nn.Module):
    """trunk.tflite: image (1, H, W, 3) RGB 0..255 -> trunk tensor (1, h, w, C), NHWC both sides."""

    def __init__(self, net):
        super().__init__()
        self.trunk = net.trunk

    def forward(self, image_nhwc):
        return self.trunk(image_nhwc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


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


def export_monolith(net, path: Path) -> Path:
    """The largest subnet in one file, for the split-cost benchmark."""
    return convert_module(MonolithExport(net.eval()), sample_inputs(net, None), path, "monolith")


class Concat(Method):
    name = "concat"
    summary = "the kit's channel-changeable network (seed 000): trunk + concatenated branches, features reused"
    reuses = "trunk tensor and features [f_1..f_k]"

    def default_widths(self, subnets: int) -> list:
        return [1.0 / subnets] * subnets

    def check_widths(self, widths: list) -> None:
        if sum(widths) > 1.0 + 1e-6:
            raise ValueError(f"widths {widths} sum to {sum(widths):.3f}; concat's branch widths must sum to at most 1")

    def build(self, cfg) -> DynamicNet:
        self.check_widths(cfg.widths)
        return DynamicNet(cfg)

    def train_logits(self, model, x, cfg, generator) -> list:
        return model(x, frozen_update=cfg.frozen_update, trunk_owner=cfg.trunk_owner)

    def export_plan(self, net: DynamicNet) -> ExportPlan:
        net = net.eval()
        stages = [StageExport("trunk", TrunkExport(net).eval(), (IMAGE,), ("features",), sample_inputs(net, None),
                              sum(p.numel() for p in net.trunk.parameters()))]
        for k in range(1, net.num_subnets + 1):
            sources = ("trunk.features",) + ((f"subnet_{k - 1}.features",) if k > 1 else ())
            head_params = net.head.out_features * net.feature_dims[k - 1] + (net.head.out_features if k == 1 else 0)
            stages.append(StageExport(f"subnet_{k}", SubnetExport(net, k).eval(), sources,
                                      ("features", "logits", "statistics"), sample_inputs(net, k),
                                      sum(p.numel() for p in net.branches[k - 1].parameters()) + head_params))
        exits = [ExitExport(("trunk",) + tuple(f"subnet_{j}" for j in range(1, k + 1)), f"subnet_{k}")
                 for k in range(1, net.num_subnets + 1)]
        return ExportPlan(tuple(stages), tuple(exits))


CONCAT = Concat()
