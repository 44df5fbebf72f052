"""Per-subnet MACs and parameters, counted by torch's FlopCounterMode (MACs = FLOPs / 2).

The counter sees convolutions and matrix products (BatchNorm and activations are left
out, as is usual for MAC figures). Definitions, per subnet k:
  macs_incremental   branch k + the head on [f_1..f_k]: what escalating to k costs on the board
  macs_cumulative    trunk + macs_incremental of 1..k: the cost of answering at k through the
                     cascade (each visited subnet's head included)
  params_incremental branch k + the head columns for f_k (the head bias counts with subnet 1)
  params_cumulative  trunk + params_incremental of 1..k = the parameters subnet k uses
"""
import torch
from torch.utils.flop_counter import FlopCounterMode


def count_macs(fn, *args) -> tuple:
    """(MACs of calling fn(*args), its result)."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args)
    return counter.get_total_flops() // 2, result


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def subnet_costs(net) -> dict:
    """{'trunk': {'macs', 'params'}, 'subnets': [{'macs_incremental', ...}, ...]} at batch 1, cfg.img_size."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = torch.zeros(1, 3, net.cfg.img_size, net.cfg.img_size, device=device)
    trunk_macs, t = count_macs(net.trunk, x)
    trunk_params = count_params(net.trunk)
    subnets, cached = [], None
    macs_total, params_total = trunk_macs, trunk_params
    for k in range(1, net.num_subnets + 1):
        macs, (cached, _) = count_macs(net.subnet_step, t, cached, k)
        params = count_params(net.branches[k - 1]) + net.head.out_features * net.feature_dims[k - 1]
        params += net.head.out_features if k == 1 else 0
        macs_total += macs
        params_total += params
        subnets.append({"index": k, "macs_incremental": int(macs), "macs_cumulative": int(macs_total),
                        "params_incremental": int(params), "params_cumulative": int(params_total)})
    net.train(was_training)
    return {"trunk": {"macs": int(trunk_macs), "params": int(trunk_params)}, "subnets": subnets}


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
