"""Checkpoints without pickle: model.safetensors + config.json (+ optimizer.safetensors to resume).

config.json holds the NetConfig (enough to rebuild the network), the training config and
any results the caller adds; a checkpoint of another architecture is refused on load.
"""
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from device.errors import UserError
from host.methods import build_network
from host.network import NetConfig

FORMAT = "dynedge-checkpoint"
VERSION = 1
MODEL_FILE, CONFIG_FILE, OPTIMIZER_FILE = "model.safetensors", "config.json", "optimizer.safetensors"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, unreadable or does not match what was asked for."""


def exists(folder) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file() and (Path(folder) / MODEL_FILE).is_file()


def replace_atomically(path: Path, write) -> None:
    """Write `path` through a temporary file and a rename: a crash never leaves it half written."""
    temporary = path.with_name(path.name + ".partial")
    write(temporary)
    os.replace(temporary, path)


def save(folder, net, meta: dict, optimizer=None, training_state: dict | None = None) -> Path:
    """Write weights and config (and, to allow resuming, the optimizer's momentum and the epoch).

    config.json goes last: it names the epoch that the weights beside it finished.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    replace_atomically(folder / MODEL_FILE, lambda path: save_file(weights, path))
    config = {"format": FORMAT, "version": VERSION, "net": net.cfg.to_dict(), **meta}
    if training_state is not None:
        config["training_state"] = training_state
    if optimizer is not None:
        state = optimizer_tensors(net, optimizer)
        replace_atomically(folder / OPTIMIZER_FILE, lambda path: save_file(state, path))
    replace_atomically(folder / CONFIG_FILE, lambda path: path.write_text(json.dumps(config, indent=2)))
    return folder


def read_config(folder) -> dict:
    folder = Path(folder)
    if not exists(folder):
        raise CheckpointError(f"no checkpoint in {folder} (expects {MODEL_FILE} and {CONFIG_FILE})")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {folder / CONFIG_FILE}: {exc}") from None
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not a {FORMAT} v{VERSION} config")
    return config


def update_config(folder, extra: dict) -> None:
    """Add or replace top-level entries of config.json (e.g. results measured after training)."""
    config = read_config(folder)
    config.update(extra)
    replace_atomically(Path(folder) / CONFIG_FILE, lambda path: path.write_text(json.dumps(config, indent=2)))


def load(folder, expected_arch: str | None = None) -> tuple[object, dict]:
    """(network with weights, config dict); refuses a checkpoint whose arch is not expected_arch."""
    config = read_config(folder)
    net_cfg = NetConfig(**config["net"])
    if expected_arch is not None and net_cfg.arch != expected_arch:
        raise CheckpointError(f"checkpoint {folder} holds arch {net_cfg.arch!r}, not {expected_arch!r}; "
                              "pass the matching --arch or another --out")
    net = build_network(net_cfg)
    net.load_state_dict(load_file(Path(folder) / MODEL_FILE))
    return net, config


def optimizer_tensors(net, optimizer) -> dict:
    """The optimizer's per-parameter buffers keyed '<param name>.<buffer>' (safetensors needs names)."""
    names = {id(p): name for name, p in net.named_parameters()}
    out = {}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value):
                out[f"{names[id(param)]}.{key}"] = value.detach().cpu().contiguous()
    return out


def load_training_state(folder, net, optimizer) -> dict:
    """Restore the optimizer buffers into `optimizer` and the weights into `net`; return training_state."""
    config = read_config(folder)
    device = next(net.parameters()).device
    net.load_state_dict({k: v.to(device) for k, v in load_file(Path(folder) / MODEL_FILE).items()})
    if (Path(folder) / OPTIMIZER_FILE).is_file():
        buffers = load_file(Path(folder) / OPTIMIZER_FILE)
        for name, param in net.named_parameters():
            for key in [k for k in buffers if k.rsplit(".", 1)[0] == name]:
                optimizer.state[param][key.rsplit(".", 1)[1]] = buffers[key].to(param.device)
    return config.get("training_state", {"epoch": 0, "history": []})
