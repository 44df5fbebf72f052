"""Uniform slimmable subnets (seed 003), trained as US-Nets trains them.

One network whose every layer runs at a width multiplier w (channels = max(8, round(c * w / 8) * 8);
the image's 3 channels and the classes stay fixed). Exit k is the whole network at width
cfg.widths[k]. Training follows US-Nets: the sandwich rule (the smallest width, random widths
in between, the largest last as the teacher of in-place distillation) with shared BatchNorm
affine parameters normalized by each width's batch statistics; after training, each exit gets
its own BatchNorm running statistics, re-estimated on training images (BN post-statistics).

The width-switching core is the four Slim* layers below: they slice their weights to the
active width, which the network passes down as an argument (no global flags). The export cuts
one plain network per exit (real smaller convolutions, BatchNorm folded in), one file each.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from converters.export import ExitStatistics
from host.batches import to_input
from host.complexity import count_macs, count_params
from host.methods.base import IMAGE, ExitExport, ExportPlan, Method, StageExport
from host.network import (MOBILENET_LAST, MOBILENET_STAGES, RESNET_STAGES, Normalize, downsample_early,
                          scaled)

CHANNEL_DIVISOR = 8
CALIBRATION_IMAGES = 2048  # US-Nets re-estimates BN statistics on about 2000 training images
CALIBRATION_BATCH = 128

# Full channels per width position: the layers one multiplier scales together. MobileNetV2: stem,
# the first block, the six stages, the last conv (no residual crosses positions). ResNet: the stem
# shares stage 1's position (stage 1's first block adds the stem tensor to its output).
POSITION_CHANNELS = {
    "mobilenet": [32, 16, *(c for _, c, _, _ in MOBILENET_STAGES), MOBILENET_LAST],
    "resnet": [c for c, _, _ in RESNET_STAGES],
}


def slim_channels(channels: int, width: float) -> int:
    return scaled(channels, width, CHANNEL_DIVISOR)


class SlimConv2d(nn.Conv2d):
    """A bias-free Conv2d that reads the input channels it is given and runs its first `cout`
    filters; a depthwise one (groups == channels) runs one group per active channel."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, depthwise: bool = False):
        super().__init__(cin, cout, kernel, stride, kernel // 2, groups=cin if depthwise else 1, bias=False)
        self.depthwise = depthwise

    def active_weight(self, cin: int, cout: int) -> torch.Tensor:
        return self.weight[:cout] if self.depthwise else self.weight[:cout, :cin]

    def forward(self, x, cout: int):
        cin = x.shape[1]
        return F.conv2d(x, self.active_weight(cin, cout), None, self.stride, self.padding, 1,
                        cin if self.depthwise else 1)

    def plain(self, cin: int, cout: int) -> nn.Conv2d:
        conv = nn.Conv2d(cin, cout, self.kernel_size, self.stride, self.padding,
                         groups=cin if self.depthwise else 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(cin, cout))
        return conv


class SlimBatchNorm2d(nn.Module):
    """BatchNorm with shared affine parameters (sliced to the active channels) and one set of
    running statistics per exit.

    Training mode normalizes by the batch statistics of whatever width runs (US-Nets' shared
    BN); with `recording` on (recording_statistics) it also folds each batch's statistics into
    the exit's running ones as a cumulative average (nn.BatchNorm2d's momentum=None). Eval mode
    normalizes by the running statistics of the exit it is told.
    """

    def __init__(self, channels: int, exits: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(exits, channels))
        self.register_buffer("running_var", torch.ones(exits, channels))
        self.register_buffer("batches_recorded", torch.zeros(exits, dtype=torch.long))
        self.recording = False

    def forward(self, x, exit: int | None):
        c = x.shape[1]
        if not self.training:
            if exit is None:
                raise ValueError("a width outside the exit ladder has no BatchNorm statistics; run it in train mode")
            return F.batch_norm(x, self.running_mean[exit, :c], self.running_var[exit, :c],
                                self.weight[:c], self.bias[:c], False, 0.0, self.eps)
        if self.recording:
            self.record(x, exit)
        return F.batch_norm(x, None, None, self.weight[:c], self.bias[:c], True, 0.0, self.eps)

    @torch.no_grad()
    def record(self, x, exit: int) -> None:
        c, seen = x.shape[1], self.batches_recorded[exit].item()
        x = x.float()
        self.running_mean[exit, :c] += (x.mean((0, 2, 3)) - self.running_mean[exit, :c]) / (seen + 1)
        self.running_var[exit, :c] += (x.var((0, 2, 3)) - self.running_var[exit, :c]) / (seen + 1)
        self.batches_recorded[exit] += 1

    def reset_statistics(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.batches_recorded.zero_()

    def plain(self, c: int, exit: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps)
        with torch.no_grad():
            for target, source in ((bn.weight, self.weight[:c]), (bn.bias, self.bias[:c]),
                                   (bn.running_mean, self.running_mean[exit, :c]),
                                   (bn.running_var, self.running_var[exit, :c])):
                target.copy_(source)
        return bn.eval()


class SlimLinear(nn.Linear):
    """A Linear that reads the features it is given (the classes stay fixed)."""

    def forward(self, x):
        return F.linear(x, self.weight[:, :x.shape[1]], self.bias)

    def plain(self, cin: int) -> nn.Linear:
        linear = nn.Linear(cin, self.out_features)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:, :cin])
            linear.bias.copy_(self.bias)
        return linear


class SlimConvBN(nn.Module):
    """SlimConv2d + SlimBatchNorm2d + activation; its plain form folds the BatchNorm into the conv."""

    def __init__(self, cin, cout, kernel, stride, exits, depthwise=False, act=nn.ReLU6):
        super().__init__()
        self.out_channels = cout
        self.conv = SlimConv2d(cin, cout, kernel, stride, depthwise)
        self.bn = SlimBatchNorm2d(cout, exits)
        self.act = act() if act is not None else None

    def forward(self, x, cout: int, exit: int | None):
        y = self.bn(self.conv(x, cout), exit)
        return y if self.act is None else self.act(y)

    def plain(self, cin: int, cout: int, exit: int) -> nn.Sequential:
        fused = fuse_conv_bn_eval(self.conv.plain(cin, cout).eval(), self.bn.plain(cout, exit))
        return nn.Sequential(fused, *([] if self.act is None else [type(self.act)()]))


class Pooled(nn.Module):
    """A slim layer followed by ResNet's early 3x3 max pooling."""

    def __init__(self, inner: SlimConvBN):
        super().__init__()
        self.inner = inner
        self.out_channels = inner.out_channels
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x, cout, exit):
        return self.pool(self.inner(x, cout, exit))

    def plain(self, cin, cout, exit):
        return nn.Sequential(self.inner.plain(cin, cout, exit), nn.MaxPool2d(3, 2, 1))


class Residual(nn.Module):
    """A plain block: after(body(x) + shortcut(x))."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, after: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.after = body, shortcut, after

    def forward(self, x):
        return self.after(self.body(x) + self.shortcut(x))


class SlimInvertedResidual(nn.Module):
    """host.network.InvertedResidual with slim layers; the hidden width is `expand` times the
    active input channels."""

    def __init__(self, cin, cout, stride, expand, exits):
        super().__init__()
        hidden = cin * expand
        self.out_channels, self.expand = cout, expand
        self.expansion = SlimConvBN(cin, hidden, 1, 1, exits) if expand != 1 else None
        self.depthwise = SlimConvBN(hidden, hidden, 3, stride, exits, depthwise=True)
        self.project = SlimConvBN(hidden, cout, 1, 1, exits, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x, cout, exit):
        hidden = x.shape[1] * self.expand
        y = x if self.expansion is None else self.expansion(x, hidden, exit)
        y = self.project(self.depthwise(y, hidden, exit), cout, exit)
        return x + y if self.residual else y

    def plain(self, cin, cout, exit):
        hidden = cin * self.expand
        layers = [] if self.expansion is None else [self.expansion.plain(cin, hidden, exit)]
        body = nn.Sequential(*layers, self.depthwise.plain(hidden, hidden, exit), self.project.plain(hidden, cout, exit))
        return Residual(body, nn.Identity(), nn.Identity()) if self.residual else body


class SlimBasicBlock(nn.Module):
    """host.network.BasicBlock with slim layers."""

    def __init__(self, cin, cout, stride, exits):
        super().__init__()
        self.out_channels = cout
        self.first = SlimConvBN(cin, cout, 3, stride, exits, act=nn.ReLU)
        self.second = SlimConvBN(cout, cout, 3, 1, exits, act=None)
        self.projection = None if stride == 1 and cin == cout else SlimConvBN(cin, cout, 1, stride, exits, act=None)

    def forward(self, x, cout, exit):
        shortcut = x if self.projection is None else self.projection(x, cout, exit)
        return F.relu(self.second(self.first(x, cout, exit), cout, exit) + shortcut)

    def plain(self, cin, cout, exit):
        body = nn.Sequential(self.first.plain(cin, cout, exit), self.second.plain(cout, cout, exit))
        shortcut = nn.Identity() if self.projection is None else self.projection.plain(cin, cout, exit)
        return Residual(body, shortcut, nn.ReLU())


def mobilenet_blocks(img_size: int, exits: int) -> list:
    """(block, width position) pairs of host.network's MobileNetV2 at full width."""
    early = downsample_early(img_size)
    blocks = [(SlimConvBN(3, 32, 3, 2 if early else 1, exits), 0), (SlimInvertedResidual(32, 16, 1, 1, exits), 1)]
    cin = 16
    for i, (expand, c, repeats, stride) in enumerate(MOBILENET_STAGES):
        stride = 2 if i == 0 and early else stride
        for j in range(repeats):
            blocks.append((SlimInvertedResidual(cin, c, stride if j == 0 else 1, expand, exits), 2 + i))
            cin = c
    blocks.append((SlimConvBN(cin, MOBILENET_LAST, 1, 1, exits), 2 + len(MOBILENET_STAGES)))
    return blocks


def resnet_blocks(img_size: int, exits: int) -> list:
    """(block, width position) pairs of host.network's ResNet-18 at full width."""
    stem = SlimConvBN(3, 64, 3, 2 if downsample_early(img_size) else 1, exits, act=nn.ReLU)
    blocks = [(Pooled(stem) if downsample_early(img_size) else stem, 0)]
    cin = 64
    for i, (c, repeats, stride) in enumerate(RESNET_STAGES):
        for j in range(repeats):
            blocks.append((SlimBasicBlock(cin, c, stride if j == 0 else 1, exits), i))
            cin = c
    return blocks


class PlainExit(nn.Module):
    """width_k.tflite: image (1, H, W, 3) RGB 0..255 -> (logits, exit statistics) of one plain network."""

    def __init__(self, features: nn.Sequential, classifier: nn.Linear):
        super().__init__()
        self.normalize = Normalize()
        self.features = features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = classifier
        self.exit_statistics = ExitStatistics()

    def forward(self, image_nhwc):
        logits = self.classifier(self.pool(self.features(self.normalize(image_nhwc.permute(0, 3, 1, 2)))))
        return logits, self.exit_statistics(logits)


class SlimNet(nn.Module):
    """The slimmable network. A width is one multiplier (uniform) or one per width position
    (POSITION_CHANNELS); the buffer `exit_widths` (exits x positions) holds every exit's.

    net(x) returns every exit's logits, in eval mode each with its own BatchNorm statistics;
    in train mode net(x, widths=[...]) returns the logits of the given widths in one call.
    """

    def __init__(self, cfg, exit_widths: list):
        super().__init__()
        self.cfg = cfg
        exits = len(exit_widths)
        blocks, positions = zip(*(mobilenet_blocks if cfg.arch == "mobilenet" else resnet_blocks)(cfg.img_size, exits))
        self.normalize = Normalize()
        self.blocks = nn.ModuleList(blocks)
        self.positions = list(positions)
        self.classifier = SlimLinear(blocks[-1].out_channels, cfg.num_classes)
        self.register_buffer("exit_widths", torch.tensor(exit_widths, dtype=torch.float64))
        self.zero_init_residual_blocks()

    def zero_init_residual_blocks(self) -> None:
        """Start residual blocks as the identity, as host.network.DynamicNet does."""
        for block in self.blocks:
            if isinstance(block, SlimBasicBlock):
                nn.init.zeros_(block.second.bn.weight)
            elif isinstance(block, SlimInvertedResidual) and block.residual:
                nn.init.zeros_(block.project.bn.weight)

    @property
    def num_subnets(self) -> int:
        return len(self.exit_widths)

    def channels(self, width) -> list:
        """Output channels of every block at `width` (a multiplier or one per position)."""
        per_position = [float(width)] * len(POSITION_CHANNELS[self.cfg.arch]) if np.isscalar(width) else list(width)
        return [slim_channels(block.out_channels, per_position[p]) for block, p in zip(self.blocks, self.positions)]

    def run(self, x, channels: list, exit: int | None) -> torch.Tensor:
        """Logits of normalized `x` with these block channels and exit `exit`'s BatchNorm statistics."""
        for block, cout in zip(self.blocks, channels):
            x = block(x, cout, exit)
        return self.classifier(x.mean((2, 3)))

    def forward(self, x, widths: list | None = None) -> list:
        x = self.normalize(x)
        if widths is None:
            return [self.run(x, self.channels(w), k) for k, w in enumerate(self.exit_widths.tolist())]
        if not self.training:
            raise ValueError("net(x, widths=...) runs in train mode only; eval mode answers the exit ladder")
        return [self.run(x, self.channels(w), None) for w in widths]

    def plain(self, k: int) -> PlainExit:
        """Exit k (0-based) as a plain network: sliced weights, its BatchNorm statistics folded in."""
        layers, cin = [], 3
        for block, cout in zip(self.blocks, self.channels(self.exit_widths[k].tolist())):
            layers.append(block.plain(cin, cout, k))
            cin = cout
        return PlainExit(nn.Sequential(*layers), self.classifier.plain(cin)).eval()


@torch.no_grad()
def macs_at(net: SlimNet, width) -> int:
    """MACs of one image through `net` at `width` (host.complexity.count_macs)."""
    was_training = net.training
    net.eval()
    image = torch.zeros(1, 3, net.cfg.img_size, net.cfg.img_size, device=net.exit_widths.device)
    macs, _ = count_macs(net.run, net.normalize(image), net.channels(width), 0)
    net.train(was_training)
    return int(macs)


@contextmanager
def recording_statistics(net: nn.Module):
    """Within: every SlimBatchNorm2d starts its running statistics afresh and records each exit's."""
    norms = [m for m in net.modules() if isinstance(m, SlimBatchNorm2d)]
    for bn in norms:
        bn.reset_statistics()
        bn.recording = True
    try:
        yield
    finally:
        for bn in norms:
            bn.recording = False


@torch.no_grad()
def recalibrate(net: SlimNet, images: np.ndarray, seed: int) -> None:
    """BN post-statistics: every exit's running statistics as the cumulative average over
    CALIBRATION_IMAGES training images (a seeded random choice: image folders come sorted by class)."""
    device = net.exit_widths.device
    chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:CALIBRATION_IMAGES])
    was_training = net.training
    net.train()
    with recording_statistics(net):
        for start in range(0, len(chosen), CALIBRATION_BATCH):
            net(to_input(torch.from_numpy(images[chosen[start:start + CALIBRATION_BATCH]]), device))
    net.train(was_training)


def check_ladder(widths: list, arch: str) -> None:
    """Strictly increasing widths in (0, 1], each giving more channels than the one before in some layer."""
    if not widths:
        raise ValueError("give at least one width")
    for width in widths:
        if not 0 < width <= 1:
            raise ValueError(f"width {width} is outside (0, 1]")
    for lower, width in zip(widths, widths[1:]):
        if width <= lower:
            raise ValueError(f"widths must increase strictly; {width} follows {lower}")
        if all(slim_channels(c, width) == slim_channels(c, lower) for c in POSITION_CHANNELS[arch]):
            raise ValueError(f"width {width} gives the same {arch} channels as {lower} in every layer "
                             f"(multiples of {CHANNEL_DIVISOR}); space the widths further apart")


def check_arch(arch: str) -> None:
    if arch not in POSITION_CHANNELS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(POSITION_CHANNELS)}")


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel (or the network itself)."""
    return getattr(model, "module", model)


def sandwich(widths: list, generator: torch.Generator) -> list:
    """US-Nets' sandwich rule: the smallest width, max(2, K - 2) widths drawn uniformly between
    the smallest and the largest (US-Nets uses 2; a longer ladder gets one per inner exit), the
    largest last. Its length depends on K only."""
    low, high = widths[0], widths[-1]
    middle = low + (high - low) * torch.rand(max(2, len(widths) - 2), generator=generator, dtype=torch.float64)
    return [low, *middle.tolist(), high]


class Slimmable(Method):
    name = "slimmable"
    summary = "seed 003 uniform subnets: the whole network at each width, trained with US-Nets' sandwich rule"
    reuses = "none"
    stage_prefix = "width"

    def default_widths(self, subnets: int) -> list:
        return [k / subnets for k in range(1, subnets + 1)]

    def check_widths(self, widths: list) -> None:
        check_ladder(widths, "mobilenet")  # the finest channel grid; build checks the arch it gets

    def build(self, cfg) -> SlimNet:
        check_arch(cfg.arch)
        check_ladder(cfg.widths, cfg.arch)
        return SlimNet(cfg, [[w] * len(POSITION_CHANNELS[cfg.arch]) for w in cfg.widths])

    def train_logits(self, model, x, cfg, generator) -> list:
        """The sandwich over the network's own cfg.widths (nothing is read from the TrainConfig)."""
        return model(x, widths=sandwich(unwrap(model).cfg.widths, generator))

    def after_training(self, net, images, cfg) -> None:
        recalibrate(net, images, cfg.seed)

    def export_plan(self, net: SlimNet) -> ExportPlan:
        net.eval()
        size = net.cfg.img_size
        stages = []
        for k in range(net.num_subnets):
            module, name = net.plain(k), f"{self.stage_prefix}_{k + 1}"
            stages.append(StageExport(name, module, (IMAGE,), ("logits", "statistics"),
                                      (torch.rand(1, size, size, 3) * 255.0,), count_params(module)))
        return ExportPlan(tuple(stages), tuple(ExitExport((s.name,), s.name) for s in stages))


SLIMMABLE = Slimmable()
