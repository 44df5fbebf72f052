"""Slimmable and single-path methods: widths, training step, BN post-statistics, export plans."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from host.methods.single_path import SINGLE_PATH
from host.methods.slimmable import SLIMMABLE, SlimBatchNorm2d, macs_at
from host.training import TrainConfig, make_optimizer, subnet_losses

CLASSES = 5


def net_config(arch="mobilenet", widths=(0.25, 0.5, 1.0), img_size=16):
    """The NetConfig fields the methods read (NetConfig itself caps the widths' sum at 1, for concat)."""
    return SimpleNamespace(arch=arch, num_classes=CLASSES, img_size=img_size, widths=list(widths))


def batch(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 255, torch.randint(0, CLASSES, (n,), generator=g)


def training_images(n=48, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def train_steps(method, net, cfg, steps=2, epochs_per_step=False):
    """A few SGD steps as host.training runs them; returns each step's logits count."""
    net.train()
    optimizer = make_optimizer(net, cfg)
    lengths, generator = [], torch.Generator().manual_seed(0)
    for step in range(steps):
        if epochs_per_step:
            generator = torch.Generator().manual_seed(step)
        x, y = batch(seed=step)
        logits = method.train_logits(net, x, cfg, generator)
        optimizer.zero_grad()
        sum(subnet_losses(logits, y, cfg)).backward()
        optimizer.step()
        lengths.append(len(logits))
    return lengths


def trained(method, arch="mobilenet", widths=(0.25, 0.5, 1.0), epochs=1.0):
    cfg = TrainConfig(epochs=epochs, lr=0.05, seed=3)
    net = method.build(net_config(arch, widths))
    train_steps(method, net, cfg)
    method.after_training(net, training_images(), cfg)
    return net.eval()


@pytest.mark.parametrize("widths, words", [
    ([0.5, 0.25], "increase strictly"),
    ([0.0, 0.5], "width 0.0 is outside"),
    ([0.5, 1.5], "width 1.5 is outside"),
    ([0.25, 0.252, 1.0], "width 0.252 gives the same"),
    ([], "at least one"),
])
def test_check_widths_names_the_offending_width(widths, words):
    for method in (SLIMMABLE, SINGLE_PATH):
        with pytest.raises(ValueError, match=words):
            method.check_widths(widths)


def test_build_refuses_widths_its_arch_cannot_tell_apart():
    SLIMMABLE.check_widths([0.5, 0.505])  # MobileNet's last conv (1280) tells them apart
    with pytest.raises(ValueError, match="resnet"):
        SLIMMABLE.build(net_config("resnet", (0.5, 0.505)))


def test_default_widths_are_a_valid_ladder():
    assert SLIMMABLE.default_widths(4) == [0.25, 0.5, 0.75, 1.0]
    SLIMMABLE.check_widths(SLIMMABLE.default_widths(8))


def test_slimmable_train_logits_is_the_sandwich():
    net = SLIMMABLE.build(net_config(widths=(0.25, 0.5, 0.75, 1.0)))
    assert train_steps(SLIMMABLE, net, TrainConfig()) == [4, 4]
    x, _ = batch()
    logits = SLIMMABLE.train_logits(net, x, TrainConfig(), torch.Generator().manual_seed(1))
    smallest, largest = net(x, widths=[0.25, 1.0])
    assert torch.allclose(logits[0], smallest) and torch.allclose(logits[-1], largest)


def test_eval_forward_answers_every_exit():
    net = SLIMMABLE.build(net_config()).eval()
    logits = net(batch()[0])
    assert [tuple(out.shape) for out in logits] == [(8, CLASSES)] * 3
    with pytest.raises(ValueError, match="train mode"):
        net(batch()[0], widths=[0.3])


def bn_statistics(net):
    return {name: buffer.clone() for name, buffer in net.named_buffers() if name.endswith("running_mean")}


def test_after_training_reestimates_statistics_per_width():
    net = SLIMMABLE.build(net_config())
    train_steps(SLIMMABLE, net, TrainConfig())
    before = bn_statistics(net)
    SLIMMABLE.after_training(net, training_images(), TrainConfig())
    after = bn_statistics(net)
    later = "blocks.2.project.bn.running_mean"  # the stem reads the same 3 channels at every width
    assert all(not torch.equal(before[name], after[name]) for name in before)
    assert not torch.allclose(after[later][0, :8], after[later][2, :8])  # each width its own statistics
    counts = [m.batches_recorded.tolist() for m in net.modules() if isinstance(m, SlimBatchNorm2d)]
    assert counts[0] == [1, 1, 1]  # 48 images: one batch per width, cumulative over the batches


def check_plan_matches(method, net, prefix):
    plan = method.export_plan(net)
    names = [f"{prefix}_{k}" for k in range(1, net.num_subnets + 1)]
    assert [stage.name for stage in plan.stages] == names
    assert [(exit.stages, exit.answer) for exit in plan.exits] == [((name,), name) for name in names]
    x, _ = batch()
    with torch.no_grad():
        expected = net(x)
        for stage, reference in zip(plan.stages, expected):
            assert stage.inputs == ("image",) and stage.outputs == ("logits", "statistics")
            assert tuple(stage.sample[0].shape) == (1, 16, 16, 3)
            logits, statistics = stage.module(x.permute(0, 2, 3, 1))
            torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())
            assert torch.equal(statistics[:, 2].long(), logits.argmax(1))
    params = [stage.params for stage in plan.stages]
    assert params == sorted(set(params))


@pytest.mark.parametrize("arch", ["mobilenet", "resnet"])
def test_slimmable_plain_exports_match_the_network(arch):
    net = trained(SLIMMABLE, arch, widths=(0.25, 0.5) if arch == "resnet" else (0.25, 0.5, 1.0))
    check_plan_matches(SLIMMABLE, net, "width")


def test_single_path_exports_match_the_network():
    check_plan_matches(SINGLE_PATH, trained(SINGLE_PATH), "path")


def test_single_path_fixes_one_exit_per_phase():
    net = SINGLE_PATH.build(net_config(widths=(0.25, 0.5, 0.75, 1.0)))
    cfg = TrainConfig(epochs=4)
    fixed = []
    for epoch in range(4):  # one step per epoch, each epoch its own generator as host.training draws
        assert train_steps(SINGLE_PATH, net, cfg, steps=1, epochs_per_step=True) == [4]
        fixed.append(net.fixed.tolist())
    assert fixed == [[False, False, False, True], [True, False, False, True],
                     [True, True, False, True], [True, True, True, True]]
    assert net.epoch.item() == 3


def single_path_net(seed, widths=(0.25, 0.5, 0.75, 1.0)):
    net = SINGLE_PATH.build(net_config(widths=widths))
    SINGLE_PATH.fix_exits(net, seed)
    return net


def test_single_path_subnets_are_non_uniform_and_increase_in_macs():
    net = single_path_net(seed=3)
    widths = net.exit_widths.tolist()
    macs = [macs_at(net, w) for w in widths]
    assert macs == sorted(set(macs))
    assert any(len(set(w)) > 1 for w in widths[:-1])
    assert widths[-1] == [1.0] * len(widths[-1])


def test_single_path_subnets_depend_on_the_seed_alone():
    assert torch.equal(single_path_net(3).exit_widths, single_path_net(3).exit_widths)
    assert not torch.equal(single_path_net(3).exit_widths, single_path_net(4).exit_widths)


def test_state_dict_rebuilds_the_same_subnets():
    net = trained(SINGLE_PATH)
    rebuilt = SINGLE_PATH.build(net.cfg)
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(rebuilt.exit_widths, net.exit_widths) and rebuilt.fixed.all()
    x, _ = batch()
    with torch.no_grad():
        for before, after in zip(net(x), rebuilt.eval()(x)):
            assert torch.equal(before, after)


@pytest.mark.slow
def test_one_width_converts_and_runs_in_litert(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from converters.export import convert_module

    net = SLIMMABLE.build(SimpleNamespace(arch="mobilenet", num_classes=10, img_size=32, widths=[0.25, 0.5]))
    train_steps(SLIMMABLE, net, TrainConfig())
    SLIMMABLE.after_training(net, training_images(size=32), TrainConfig())
    stage = SLIMMABLE.export_plan(net.eval()).stages[0]
    path = convert_module(stage.module, stage.sample, tmp_path / f"{stage.name}.tflite", stage.name)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    images = torch.from_numpy(training_images(n=4, size=32, seed=1)).float()
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None].numpy())
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        logits = next(out for out in outputs if out.shape[-1] == 10)
        with torch.no_grad():
            expected = net(image[None].permute(0, 3, 1, 2))[0]
        assert logits.argmax() == expected.argmax().item()
        np.testing.assert_allclose(logits[0], expected[0].numpy(), rtol=1e-3, atol=1e-3)
