"""Non-uniform subnets sampled in different epochs of one training run (seed 003, single-path).

Only the abstract of seed 003 is public: multi-path retrains the background model once per
non-uniform subnet; single-path "samples multiple sub-nets in different epochs within one
training round". The reading implemented here, and why:

- Subnets. Exit k has one width multiplier per stage (slimmable.POSITION_CHANNELS: MobileNetV2's
  stem, first block, six stages and last conv; ResNet's four stages), not per layer: the blocks
  of a stage add their inputs to their outputs, so their channels must match, and a stage is
  where MobileNetV2 and ResNet change width in the first place.
- Cost bands. cfg.widths names the ladder's cost targets: exit k costs about the uniform network
  at widths[k]. Its multipliers are drawn from band k, [lo_k, hi_k] with hi_k the midpoint to
  widths[k+1] and lo_k the midpoint to widths[k-1] (the smallest exit: as far below widths[0]
  as hi_0 lies above it, at least widths[0] / 2). The last exit is the uniform network at
  widths[-1] (the background model, normally 1.0): the sandwich's teacher.
- Schedule. The run's epochs are split into K phases. Until exit k is fixed, each step trains a
  fresh random configuration from band k in its place (US-Nets-style sampling, inside the band);
  at the start of epoch floor(k * E / K) (k = 1..K-1, E = ceil(cfg.epochs)) exit k is sampled and
  fixed, and from then on trained as it stands. So the smallest subnet is sampled first, after
  the first phase, and trained fixed the longest; the last phase fine-tunes all K exits. Each
  step returns K logits (one per exit, smallest first, the background model last).
- Sampling a fixed exit draws candidates from band k with a generator seeded by
  (TrainConfig.seed, k) alone: the same seed gives the same subnets on every run and on every
  DistributedDataParallel rank. A candidate is kept when its MACs (host.complexity.count_macs)
  lie strictly between the previous exit's and the uniform network's at widths[k+1]; after a
  few misses the uniform network at widths[k] stands in (check_widths makes it fit). MACs
  therefore increase strictly along the ladder.
- Progress. The training loop draws one torch.Generator per epoch (host.training seeds one per
  epoch) and does not pass the epoch: a generator object not seen on the previous step starts a
  new epoch. The epoch count is a buffer, so it survives checkpoint and resume (a resumed run
  starts with a new epoch); the fixed exits' multipliers and which exits are fixed are buffers
  too, so a state_dict and the NetConfig rebuild the subnets. after_training fixes any exit the
  run was too short to reach (e.g. a 1-epoch run fixes every exit at its first step).
- BatchNorm statistics per exit are re-estimated after training, as in slimmable.
"""
from __future__ import annotations

import math

import torch

from host.methods.slimmable import (POSITION_CHANNELS, SlimNet, Slimmable, check_arch, check_ladder, macs_at,
                                    recalibrate, unwrap)

CANDIDATES = 20  # draws per fixed exit before the uniform width stands in


class SinglePathNet(SlimNet):
    """SlimNet plus the schedule's state: which exits are fixed and the epochs seen (buffers)."""

    def __init__(self, cfg):
        positions = len(POSITION_CHANNELS[cfg.arch])
        super().__init__(cfg, [[w] * positions for w in cfg.widths])
        fixed = torch.zeros(len(cfg.widths), dtype=torch.bool)
        fixed[-1] = True  # the background model
        self.register_buffer("fixed", fixed)
        self.register_buffer("epoch", torch.tensor(-1))
        self.epoch_generator = None  # the last step's generator (not state: a resumed run starts an epoch)


def band(widths: list, k: int) -> tuple:
    """The per-stage multiplier range of exit k (0-based, k < K - 1)."""
    high = (widths[k] + widths[k + 1]) / 2
    low = (widths[k - 1] + widths[k]) / 2 if k else max(widths[0] / 2, 2 * widths[0] - high)
    return low, high


def draw(net: SinglePathNet, k: int, generator: torch.Generator) -> list:
    """A random non-uniform width from band k: one multiplier per stage."""
    low, high = band(net.cfg.widths, k)
    positions = net.exit_widths.shape[1]
    return (low + (high - low) * torch.rand(positions, generator=generator, dtype=torch.float64)).tolist()


def fix_exit(net: SinglePathNet, k: int, seed: int) -> None:
    """Sample exit k (0-based) for good: the first seeded candidate whose MACs lie strictly between
    exit k-1's and the uniform network's at widths[k+1], else the uniform width widths[k]."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + k)
    floor = macs_at(net, net.exit_widths[k - 1].tolist()) if k else 0
    ceiling = macs_at(net, net.cfg.widths[k + 1])
    chosen = [net.cfg.widths[k]] * net.exit_widths.shape[1]
    for _ in range(CANDIDATES):
        candidate = draw(net, k, generator)
        if floor < macs_at(net, candidate) < ceiling:
            chosen = candidate
            break
    net.exit_widths[k] = torch.tensor(chosen, dtype=torch.float64)
    net.fixed[k] = True


class SinglePath(Slimmable):
    name = "single-path"
    summary = "seed 003 non-uniform subnets, each sampled and fixed in a different epoch of one training run"
    reuses = "none"
    stage_prefix = "path"

    def build(self, cfg) -> SinglePathNet:
        check_arch(cfg.arch)
        check_ladder(cfg.widths, cfg.arch)
        return SinglePathNet(cfg)

    def train_logits(self, model, x, cfg, generator) -> list:
        """K logits: the fixed exits as they stand, a fresh draw from each unfixed exit's band.
        Reads cfg.epochs (the phases) and cfg.seed (the fixed exits)."""
        net = unwrap(model)
        self.advance(net, cfg, generator)
        widths = [net.exit_widths[k].tolist() if net.fixed[k] else draw(net, k, generator)
                  for k in range(net.num_subnets)]
        return model(x, widths=widths)

    def advance(self, net: SinglePathNet, cfg, generator) -> None:
        """On a new epoch's first step, fix the exits whose phase has ended."""
        if generator is net.epoch_generator:
            return
        net.epoch_generator = generator
        net.epoch += 1
        epochs, exits = math.ceil(cfg.epochs), net.num_subnets
        self.fix_exits(net, cfg.seed, lambda k: net.epoch.item() >= (k + 1) * epochs // exits)

    def fix_exits(self, net: SinglePathNet, seed: int, due=lambda k: True) -> None:
        """Fix, smallest first, every unfixed exit k with due(k) (exit k's sampling needs k-1's MACs)."""
        for k in range(net.num_subnets - 1):
            if not net.fixed[k] and due(k):
                fix_exit(net, k, seed)

    def after_training(self, net, images, cfg) -> None:
        self.fix_exits(net, cfg.seed)
        recalibrate(net, images, cfg.seed)


SINGLE_PATH = SinglePath()
