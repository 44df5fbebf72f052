"""MACs and parameters of a method's stages and exits, counted by torch's FlopCounterMode
(MACs = FLOPs / 2) on each stage's export module at batch 1.

The counter sees convolutions and matrix products (BatchNorm and activations are left out, as
is usual for MAC figures). Per exit k of the ladder:
  macs_alone        the stages exit k needs, run from the image: what fixed:k costs
  macs_cumulative   the stages of exits 1..k together: the cost of answering at k after
                    trying every exit below it (for concat, trunk + subnets 1..k; for a
                    width-switching method, the sum of widths 1..k)
  macs_incremental  macs_cumulative(k) - macs_cumulative(k-1): what escalating to k costs
  params            the weights of the stages exit k needs
"""
import torch
from torch.utils.flop_counter import FlopCounterMode

from device.bundle.manifest import check_growing_cost


def count_macs(fn, *args) -> tuple:
    """(MACs of calling fn(*args), its result)."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args)
    return counter.get_total_flops() // 2, result


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def walk_macs(exit_stages: list, stage_macs: dict, tried) -> list:
    """MACs of answering at each exit k when the exits `tried` (booleans, one per exit below the
    last) were run on the way: the stages of those exits and of exit k, each counted once."""
    costs, run = [], set()
    for k, stages in enumerate(exit_stages):
        costs.append(sum(stage_macs[name] for name in run | set(stages)))
        if k < len(tried) and tried[k]:
            run |= set(stages)
    return costs


@torch.no_grad()
def ladder_costs(plan) -> dict:
    """{"stages": {name: {"macs", "params"}}, "exits": [{"index", "stages", "answer", "macs_alone", "macs_incremental",
    "macs_cumulative", "params"}, ...]} of a host.methods.ExportPlan."""
    stages = {stage.name: {"macs": int(count_macs(stage.module.eval(), *stage.sample)[0]), "params": int(stage.params)}
              for stage in plan.stages}
    macs = {name: cost["macs"] for name, cost in stages.items()}
    needs = [exit_.stages for exit_ in plan.exits]
    cumulative = walk_macs(needs, macs, [True] * len(needs))
    exits = [{"index": k, "stages": list(stages_k), "answer": plan.exits[k - 1].answer, "macs_alone": int(sum(macs[name] for name in stages_k)),
              "macs_incremental": int(cumulative[k - 1] - (cumulative[k - 2] if k > 1 else 0)),
              "macs_cumulative": int(cumulative[k - 1]),
              "params": int(sum(stages[name]["params"] for name in stages_k))}
             for k, stages_k in enumerate(needs, start=1)]
    check_growing_cost(exits)
    return {"stages": stages, "exits": exits}


# A Raspberry Pi 4 (64-bit OS, fp32 XNNPACK) estimate from public figures, not a measurement:
# XNNPACK's README gives MobileNetV2 1.0/224 (300 MMACs) at 46 ms, about 0.15 ms per MMAC, and
# a small model runs fewer MACs per ms, about 1.4x slower per MAC below 65 MMACs. Above 65 the
# estimate stays at 65 MMACs' until the plain rate catches up, so that it never falls with MACs.
PI4_MS_PER_MMAC = 46.0 / 300.0
PI4_SMALL_MODEL_MMACS, PI4_SMALL_MODEL_FACTOR = 65.0, 1.4


def pi4_estimate_ms(macs: float) -> float:
    """Estimated fp32 ms of `macs` MACs on a Raspberry Pi 4 (see the constants above)."""
    mmacs = macs / 1e6
    small = min(mmacs, PI4_SMALL_MODEL_MMACS) * PI4_SMALL_MODEL_FACTOR
    return max(mmacs, small) * PI4_MS_PER_MMAC
