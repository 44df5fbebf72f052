"""Training-step throughput of the dynamic network, default (NCHW) against channels-last memory.

    python bench/train_step.py [--arch mobilenet] [--batch-size 64] [--threads 2]

Prints images per second for both layouts and their ratio; host/train.py trains
channels-last because of this measurement.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from host.network import ARCHS, DynamicNet, NetConfig  # noqa: E402


def images_per_second(arch: str, batch: int, layout: torch.memory_format, steps: int = 6, warmup: int = 3) -> float:
    torch.manual_seed(0)
    net = DynamicNet(NetConfig(arch=arch)).to(memory_format=layout)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = (torch.rand(batch, 3, 32, 32) * 255).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch,))
    for i in range(warmup + steps):
        if i == warmup:
            started = time.perf_counter()
        loss = sum(F.cross_entropy(out, y) for out in net(x, frozen_update=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet", choices=ARCHS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nchw = images_per_second(args.arch, args.batch_size, torch.contiguous_format)
    nhwc = images_per_second(args.arch, args.batch_size, torch.channels_last)
    print(f"{args.arch}, batch {args.batch_size}, {args.threads} threads: "
          f"NCHW {nchw:.0f} img/s, channels-last {nhwc:.0f} img/s, ratio {nhwc / nchw:.2f}")


if __name__ == "__main__":
    main()
