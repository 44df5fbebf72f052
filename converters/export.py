"""PyTorch -> TFLite with litert-torch: one file per stage of a method's export plan.

The board feeds NHWC RGB pixels (0..255 float32) and hands tensors between stages in NHWC
(host/methods/concat.py says why). Every stage's signature names its inputs args_0, args_1, ...
in the plan's order and its outputs output_0, output_1, ...; the manifest maps the plan's
names onto them (stage_entries).
"""
from pathlib import Path

import torch
from torch import nn

from converters.flatbuffer import strip_tensor_names
from device.errors import UserError


class ExportError(UserError, RuntimeError):
    """litert-torch could not lower one module; the message names it."""


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


def export_stages(plan, out_dir: Path, suffix: str = "") -> dict:
    """Write <stage name><suffix>.tflite (float32) for every stage of `plan` (host.methods.ExportPlan)
    into `out_dir`; returns {stage name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {stage.name: convert_module(stage.module.eval(), stage.sample, out_dir / f"{stage.name}{suffix}.tflite",
                                       stage.name) for stage in plan.stages}


def stage_entries(plan, macs: dict) -> list:
    """The manifest's "stages" (device/bundle/manifest.py) of `plan`, with each stage's MACs."""
    return [{"name": stage.name,
             "inputs": [{"name": f"args_{j}", "from": source} for j, source in enumerate(stage.inputs)],
             "outputs": {name: f"output_{j}" for j, name in enumerate(stage.outputs)},
             "macs": int(macs[stage.name]), "params": int(stage.params)} for stage in plan.stages]
