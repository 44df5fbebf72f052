"""The channel-changeable dynamic network (shared/DESIGN.md section 2).

    image -> trunk (full width, run once) -> branch_1 .. branch_K (fractions of the width,
    independent, each reads the trunk tensor) -> features f_1 .. f_K
    subnet k = trunk + branches 1..k; logits_k = head([f_1, ..., f_k]) where the head is
    one shared linear layer and subnet k uses the first columns that match [f_1..f_k].

Escalating from k to k+1 needs only branch k+1 and the head: the trunk tensor and
f_1..f_k are reused, which is what the board's feature cache exploits.
"""
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from device.io.preprocess import MEAN_RGB, STD_RGB

ARCHS = ("mobilenet", "resnet")


@dataclass
class NetConfig:
    """What rebuilds a network of any method (host/methods/): its widths mean what the method
    says (concat: branch fractions summing to at most 1; slimmable: the exits' width multipliers)."""
    arch: str = "mobilenet"
    num_classes: int = 10
    img_size: int = 32
    widths: list = field(default_factory=lambda: [0.25, 0.25, 0.25, 0.25])
    method: str = "concat"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of: {', '.join(ARCHS)}")
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be positive fractions, got {self.widths}")
        if self.img_size < 16:
            raise ValueError(f"img_size {self.img_size} is too small; use 16 or more")

    def to_dict(self) -> dict:
        return asdict(self)


def scaled(channels: int, width: float, divisor: int = 4) -> int:
    """Channels at a width fraction, rounded to a multiple of `divisor` (at least `divisor`)."""
    return max(divisor, int(round(channels * width / divisor)) * divisor)


class Normalize(nn.Module):
    """RGB 0..255 -> standardized; inside the network so that the exported trunk folds it in."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(STD_RGB).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) * self.inv_std


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear project."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions and a (projected) shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride, act=nn.ReLU), conv_bn(cout, cout, 3, act=None))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


# MobileNetV2 stages after the trunk: (expand, channels, repeats, stride).
MOBILENET_STAGES = [(6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
MOBILENET_LAST = 1280
# ResNet-18 stages: (channels, blocks, stride).
RESNET_STAGES = [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]


def downsample_early(img_size: int) -> bool:
    """Camera-sized inputs (>= 64 px) get the ImageNet-style early strides; CIFAR keeps resolution."""
    return img_size >= 64


def build_trunk(cfg: NetConfig) -> tuple[nn.Module, int]:
    """The shared head convolutions at full width; returns (module, output channels)."""
    early = 2 if downsample_early(cfg.img_size) else 1
    if cfg.arch == "mobilenet":
        body = [conv_bn(3, 32, 3, early), InvertedResidual(32, 16, 1, 1)]
        return nn.Sequential(Normalize(), *body), 16
    body = [conv_bn(3, 64, 3, early, act=nn.ReLU)]
    if early > 1:
        body.append(nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(Normalize(), *body), 64


def build_branch(cfg: NetConfig, cin: int, width: float) -> tuple[nn.Module, int]:
    """The rest of the base architecture at `width`, ending in global pooling; returns (module, feature dim)."""
    layers = []
    if cfg.arch == "mobilenet":
        for i, (t, c, n, s) in enumerate(MOBILENET_STAGES):
            if i == 0 and downsample_early(cfg.img_size):
                s = 2
            cout = scaled(c, width)
            for j in range(n):
                layers.append(InvertedResidual(cin, cout, s if j == 0 else 1, t))
                cin = cout
        dim = scaled(MOBILENET_LAST, width)
        layers.append(conv_bn(cin, dim, 1))
    else:
        for c, n, s in RESNET_STAGES:
            cout = scaled(c, width)
            for j in range(n):
                layers.append(BasicBlock(cin, cout, s if j == 0 else 1))
                cin = cout
        dim = cin
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), dim


class DynamicNet(nn.Module):
    """Trunk + K width-fraction branches + one shared, sliceable linear head."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk, trunk_channels = build_trunk(cfg)
        branches, dims = zip(*(build_branch(cfg, trunk_channels, w) for w in cfg.widths))
        self.branches = nn.ModuleList(branches)
        self.feature_dims = list(dims)
        self.feature_offsets = [sum(dims[:k]) for k in range(len(dims) + 1)]  # offsets[k] = width of [f_1..f_k]
        self.head = nn.Linear(self.feature_offsets[-1], cfg.num_classes)
        self._zero_init_residual_branches()

    def _zero_init_residual_branches(self) -> None:
        """Start every residual block as the identity (its last BatchNorm's scale at zero): the
        network trains as a shallower one first, which speeds up short CPU runs
        (bench/results/quick_preset_probes.md)."""
        for block in self.modules():
            if isinstance(block, BasicBlock) or (isinstance(block, InvertedResidual) and block.residual):
                nn.init.zeros_(block.body[-1][1].weight)

    @property
    def num_subnets(self) -> int:
        return len(self.branches)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of the subnet whose concatenated features are `features` (its width picks the slice)."""
        d = features.shape[1]
        return F.linear(features, self.head.weight[:, :d], self.head.bias)

    def subnet_step(self, trunk_out, cached, k: int):
        """Escalation step k (1-based): ([f_1..f_k], logits_k) from the trunk tensor and cached
        [f_1..f_{k-1}] (None for k = 1).

        This is exactly what subnet_k.tflite computes on the board. It returns the concatenated
        features, the head's own input, rather than f_k alone: they are step k+1's `cached`, so
        on the board one subnet's output is the next one's input as it stands.
        """
        f_k = self.branches[k - 1](trunk_out)
        features = f_k if cached is None else torch.cat([cached, f_k], dim=1)
        return features, self.head_logits(features)

    def forward_subnet(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Logits of subnet k alone (trunk + branches 1..k)."""
        t = self.trunk(x)
        features = torch.cat([self.branches[j](t) for j in range(k)], dim=1)
        return self.head_logits(features)

    def forward(self, x: torch.Tensor, frozen_update: bool = False, trunk_owner: int | None = None) -> list:
        """Every subnet's logits from one pass (trunk once, each branch once).

        With `frozen_update`, subnet k's loss reaches only branch k and the head: the trunk
        tensor is detached for every branch but `trunk_owner`'s (default: the largest), and
        the cached f_1..f_{k-1} are detached in subnet k's concatenation.
        """
        K = self.num_subnets
        owner = K if trunk_owner is None else trunk_owner
        t = self.trunk(x)
        feats = [b(t if (not frozen_update or i + 1 == owner) else t.detach()) for i, b in enumerate(self.branches)]
        logits = []
        for k in range(1, K + 1):
            prev = [f.detach() if frozen_update else f for f in feats[: k - 1]]
            logits.append(self.head_logits(torch.cat(prev + [feats[k - 1]], dim=1)))
        return logits
