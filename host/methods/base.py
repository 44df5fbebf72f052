"""What every method gives the kit (shared/DESIGN.md section 3): its network, its training
step, its exit ladder and its export plan.

A method is an object with the Method interface below, registered in host/methods/__init__.py.
Everything else (data, optimizer, schedule, MAC counter, calibration, export, parity, bundle,
board engine, router, reports) is shared and reads a method only through this interface.

The network a method builds answers `net(x)` in eval mode with the logits of every exit, in
ladder order ([exit 1, ..., exit K], each (N, classes)); calibration, evaluation and parity
rely on that. Its export plan cuts it into stages (one TFLite file each) and names, per exit,
the stages that exit needs and the stage whose outputs hold its logits and exit statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

IMAGE = "image"  # the source name of a stage input fed with the preprocessed camera frame


@dataclass(frozen=True)
class StageExport:
    """One model file of a bundle.

    `module` (eval mode) takes NHWC tensors, one per entry of `inputs`, in that order, and returns
    a tuple of tensors named by `outputs`, in that order. Each input names its source: IMAGE, or
    "<stage>.<output name>" of a stage earlier in the plan. `sample` holds tracing inputs of the
    shapes the board feeds (batch 1). `params` counts the weights this file holds (the module may
    reference more of the network than it reaches)."""
    name: str                 # file stem: "trunk", "subnet_2", "width_3", ...
    module: nn.Module
    inputs: tuple             # e.g. (IMAGE,) or ("trunk.features", "subnet_1.features")
    outputs: tuple            # e.g. ("features", "logits", "statistics")
    sample: tuple             # torch tensors, one per input
    params: int


@dataclass(frozen=True)
class ExitExport:
    """One exit of the ladder: the stages it needs (dependencies first) and the stage whose
    outputs "logits" and "statistics" (converters.export.ExitStatistics) answer it."""
    stages: tuple
    answer: str


@dataclass(frozen=True)
class ExportPlan:
    stages: tuple             # StageExport, in an order where every source comes first
    exits: tuple              # ExitExport, in ladder order (cost must increase)


class Method:
    """The interface; each method module subclasses it once."""
    name: str = ""
    summary: str = ""         # one line for --help and --method nosuch
    reuses: str = "none"      # what escalation reuses, for the manifest and reports

    def default_widths(self, subnets: int) -> list:
        """The width list (NetConfig.widths) of `subnets` exits when --widths is not given."""
        raise NotImplementedError

    def check_widths(self, widths: list) -> None:
        """Raise ValueError with a one-line reason when `widths` do not suit this method."""
        raise NotImplementedError

    def build(self, cfg) -> nn.Module:
        """A fresh network for host.network.NetConfig `cfg` (cfg.widths as check_widths accepts)."""
        raise NotImplementedError

    def train_logits(self, model, x: torch.Tensor, cfg, generator: torch.Generator) -> list:
        """The logits one training step learns from, the teacher (largest) last: the loop applies
        host.training.subnet_losses to them (labels for the last, in-place distillation from it
        for the others when cfg.distill). `model` may be DistributedDataParallel around the net:
        call it once per step (one forward, one backward). Its length stays the same every step."""
        raise NotImplementedError

    def after_training(self, net: nn.Module, images: np.ndarray, cfg) -> None:
        """Work after the last step on the training images (uint8 NHWC), e.g. BatchNorm
        statistics re-estimated per width; nothing by default."""

    def export_plan(self, net: nn.Module) -> ExportPlan:
        """The stages and exits of `net` (in eval mode) for the converters."""
        raise NotImplementedError
