"""The board engine: cache reuse counted per interpreter, escalation == recomputation, the guard,
the public-API stages against the fast path."""
import json

import numpy as np
import pytest

from device.engine import Cascade, CascadeError
from device.engine.outputs import ModelFile
from device.policy import CostModel
from tests.device_fakes import FakeClock, fake_bundle, fake_factory, reference_logits
from tests.torch_threads import one_thread  # noqa: F401  (autouse: the int8 export runs a small network)

NEVER_EXIT = [-np.inf, -np.inf, -np.inf]
ALWAYS_EXIT = [np.inf, np.inf, np.inf]


def image(seed=0, size=8):
    return np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype(np.float32)


def test_escalation_runs_trunk_once_and_each_subnet_once():
    factory = fake_factory()
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=factory)
    result = cascade.infer(image(), NEVER_EXIT)
    assert result.exit_subnet == 3
    assert cascade.invokes == {"trunk": 1, "subnet_1": 1, "subnet_2": 1, "subnet_3": 1}
    # each interpreter also ran once at load, the run that checks its tensors (uncounted by the stage)
    assert {n: i.invokes - 1 for n, i in factory.made.items()} == cascade.invokes
    cascade.infer(image(1), ALWAYS_EXIT)
    assert cascade.invokes == {"trunk": 2, "subnet_1": 2, "subnet_2": 1, "subnet_3": 1}


def test_escalation_equals_recomputation_from_scratch():
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory())
    cascade.infer(image(7), ALWAYS_EXIT)  # a previous frame must leave nothing behind
    x = image(3)
    result = cascade.infer(x, NEVER_EXIT)
    for k in (1, 2, 3):
        np.testing.assert_allclose(cascade.logits(k), reference_logits(x, k), rtol=1e-5)
    expected = reference_logits(x, 3)[0]
    assert result.label == int(np.argmax(expected))
    p = np.exp(expected - expected.max())
    assert result.score == pytest.approx(float(p.max() / p.sum()), rel=1e-5)


def test_exit_at_first_subnet_at_or_under_its_threshold():
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory())
    x = image(5)
    cascade.set_image(x)
    cascade.run_exit(1)
    h1 = cascade.exit_statistics(1)[0]
    assert cascade.infer(x, [h1, -np.inf, np.inf]).exit_subnet == 1
    assert cascade.infer(x, [h1 - 1e-6, np.inf, np.inf]).exit_subnet == 2


def test_an_exit_runs_the_stages_it_needs_that_the_frame_has_not_run():
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory())
    cascade.set_image(image())
    cascade.run_exit(2)
    assert cascade.invokes == {"trunk": 1, "subnet_1": 1, "subnet_2": 1, "subnet_3": 0}
    cascade.run_exit(3)
    assert cascade.invokes == {"trunk": 1, "subnet_1": 1, "subnet_2": 1, "subnet_3": 1}
    with pytest.raises(ValueError, match="exit 4 does not exist"):
        cascade.run_exit(4)


def test_deadline_guard_answers_with_what_it_has():
    clock = FakeClock()
    costs = {"trunk": 0.002, "subnet_1": 0.003, "subnet_2": 0.010, "subnet_3": 0.010}
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory(clock=clock, costs=costs),
                      clock=clock)
    cascade.warm_up(rounds=2)
    # trunk + subnet 1 = 5 ms; subnet 2 would end at 15 ms: past a 12 ms deadline, within 20 ms.
    cut = cascade.infer(image(), NEVER_EXIT, deadline_s=0.012)
    assert (cut.exit_subnet, cut.deadline_cut) == (1, True)
    assert len(cut.stage_latencies) == 2
    mid = cascade.infer(image(), NEVER_EXIT, deadline_s=0.020)
    assert (mid.exit_subnet, mid.deadline_cut) == (2, True)
    full = cascade.infer(image(), NEVER_EXIT, deadline_s=0.030)
    assert (full.exit_subnet, full.deadline_cut) == (3, False)
    assert sum(full.stage_latencies) == pytest.approx(0.025)


def test_warm_up_on_a_slow_board_stops_at_its_time_cap():
    clock = FakeClock()
    costs = {"trunk": 0.010, "subnet_1": 0.030, "subnet_2": 0.030, "subnet_3": 0.030}  # 100 ms a round
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory(clock=clock, costs=costs),
                      clock=clock)
    cascade.warm_up(rounds=20, max_seconds=0.35)
    assert cascade.invokes["trunk"] == 4  # rounds end at 0.1, 0.2, 0.3, 0.4 s: the cap stops the fourth
    assert [cascade.costs.predict(i) for i in range(4)] == pytest.approx([0.010, 0.030, 0.030, 0.030])


def test_a_load_spike_during_warm_up_does_not_inflate_a_nominal_cost():
    costs = CostModel(3)
    costs.calibrate([[0.001] * 5, [0.003, 0.009, 0.009, 0.003, 0.003], [0.002] * 5])  # a spike on stage 1
    assert [costs.predict(i) for i in range(3)] == pytest.approx([0.001, 0.003, 0.002])


def test_a_preempted_stage_counts_as_a_bounded_slowdown():
    costs = CostModel(2, alpha=0.5, max_jump=2.0)
    costs.calibrate([[0.002], [0.002]])
    costs.observe_frame([0], [0.100])  # the trunk sat preempted: 50x its cost
    assert 1.0 < costs.predict(1) / 0.002 <= 2.0  # counted as at most max_jump x the estimate


def test_a_lasting_slowdown_past_the_bound_is_still_learned():
    """The bound is relative to the estimate: a board running 5x slower for good (throttled,
    shared) is predicted at 5x within a few frames, not held at a fixed cap."""
    costs = CostModel(2, alpha=0.5, max_jump=2.0)
    costs.calibrate([[0.002], [0.002]])
    for _ in range(12):
        costs.observe_frame([0, 1], [0.010, 0.010])
    assert costs.predict(1) == pytest.approx(0.010, rel=0.01)


def test_a_cheap_stage_moves_the_prediction_less_than_an_expensive_one():
    """The same 2x slowdown seen on the cheap first stage alone (cold caches) moves the subnets'
    prediction less than when the expensive stage runs 2x too."""
    def after(frame):
        costs = CostModel(2, alpha=0.5)
        costs.calibrate([[0.001], [0.004]])
        costs.observe_frame(range(len(frame)), frame)
        return costs.predict(1) / 0.004
    cheap_only, both = after([0.002]), after([0.002, 0.008])
    assert 1.0 < cheap_only < both < 2.0


def test_a_cold_first_stage_barely_moves_the_prediction_of_the_subnets():
    """A fixed 1 ms penalty on the cheap trunk of a 10 ms frame (caches gone cold between camera
    frames) raises the predicted subnet cost by about a tenth, not by the trunk's own 2x."""
    costs = CostModel(3)
    costs.calibrate([[0.001], [0.004], [0.005]])
    for _ in range(50):
        costs.observe_frame([0, 1, 2], [0.002, 0.004, 0.005])
    assert costs.predict(2) == pytest.approx(0.005 * 1.1)


def test_a_bimodal_cost_is_predicted_at_its_mean_with_no_margin():
    """Under contention a stage runs through or is preempted; the guard predicts the expected
    cost, not the expected cost plus a margin, which cut frames that would have fit."""
    costs = CostModel(2)
    costs.calibrate([[0.001], [0.001]])
    predictions = []
    for i in range(400):
        costs.observe_frame([0, 1], [0.0015, 0.0015] if i % 2 else [0.001, 0.001])
        predictions.append(costs.predict(1))
    assert np.mean(predictions[-2:]) == pytest.approx(0.00125, rel=1e-3)


def test_a_stage_fed_a_tensor_of_another_shape_is_named():
    bundle = fake_bundle()
    bundle.manifest["stages"][2]["inputs"][1]["from"] = "trunk.features"  # subnet_2's cached features
    with pytest.raises(CascadeError, match=r"subnet_2: takes a args_1 \(trunk.output_0\) of shape"):
        Cascade(bundle, threads=1, interpreter_factory=fake_factory())


def test_a_tensor_that_moves_during_invoke_is_refused():
    """Ports are bound to tensor addresses once; a model whose tensors move (dynamic shapes)
    must be refused after its run at load, not read from stale memory."""
    factory = fake_factory()

    def moving_trunk(path, threads):
        interpreter = factory(path, threads)
        if str(path).endswith("trunk"):
            run, out = interpreter.invoke, interpreter._out[0]["index"]

            def invoke():  # the arena places the output elsewhere when the model runs
                interpreter._tensors[out] = interpreter._tensors[out].copy()
                run()
            interpreter.invoke = invoke
        return interpreter
    with pytest.raises(CascadeError, match="trunk: tensor 'output_0' moved during invoke"):
        Cascade(fake_bundle(), threads=1, interpreter_factory=moving_trunk, fast=True)


def test_the_trunk_tensor_is_copied_from_the_trunks_output():
    cascade = Cascade(fake_bundle(), threads=1, interpreter_factory=fake_factory())
    x = image(5)
    cascade.set_image(x)
    cascade.run_exit(1)
    trunk_out = cascade.stages[0].port("output", "output_0").array
    subnet_in = cascade.stages[1].port("input", "args_0").array
    np.testing.assert_array_equal(trunk_out, np.full(trunk_out.shape, x.mean() / 255.0, np.float32))
    np.testing.assert_array_equal(subnet_in, trunk_out)
    assert not np.shares_memory(subnet_in, trunk_out)


PATHS = [False, True]  # the documented API (PublicStage), the fast path (Stage, ports bound in the arena)


def test_the_fast_path_is_taken_only_on_tested_runtime_versions(tiny_bundle, monkeypatch):
    from device.bundle.loader import load_bundle
    from device.engine import runtime
    bundle = load_bundle(tiny_bundle)
    assert Cascade(bundle, runtime="litert", threads=1).fast_path  # ai-edge-litert 2.3 here
    monkeypatch.setattr(runtime, "FAST_PATH_TESTED", {"ai-edge-litert": ("9.",)})
    cascade = Cascade(bundle, runtime="litert", threads=1)
    assert not cascade.fast_path and type(cascade.stages[0]).__name__ == "PublicStage"


def test_public_and_fast_paths_give_identical_outputs(tiny_bundle):
    """Issue 19's check: the documented-API stages answer every frame exactly as the fast path."""
    from device.bundle.loader import load_bundle
    bundle = load_bundle(tiny_bundle)
    images, _ = bundle.eval_set()
    K = bundle.num_subnets
    outputs = {}
    for fast in PATHS:
        cascade = Cascade(bundle, runtime="litert", threads=1, fast=fast)
        assert cascade.fast_path == fast
        frames = []
        for x in images[:10]:
            result = cascade.infer(x[None].astype(np.float32), [-np.inf] * K)
            frames.append((result.label, result.score, [cascade.logits(k).copy() for k in range(1, K + 1)]))
        outputs[fast] = frames
    for (label, score, logits), (label_f, score_f, logits_f) in zip(outputs[False], outputs[True]):
        assert (label, score) == (label_f, score_f)
        for a, b in zip(logits, logits_f):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fast", PATHS)
def test_real_bundle_escalation_matches_fresh_frames(tiny_bundle, fast):
    """On real TFLite files: escalating through the cache gives each subnet's logits as a fresh run."""
    from device.bundle.loader import load_bundle
    bundle = load_bundle(tiny_bundle)
    cascade = Cascade(bundle, runtime="litert", threads=1, fast=fast)
    h, w = bundle.input_size
    x = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
    K = bundle.num_subnets
    before = cascade.invokes
    cascade.infer(x, [-np.inf] * K)
    escalated = np.array([cascade.logits(k) for k in range(1, K + 1)])  # a copy: the buffers are the stages' own
    assert all(cascade.invokes[n] - before[n] == 1 for n in before)
    for k in range(1, K + 1):
        cascade.run_all(np.zeros_like(x))  # spoil the cache with another frame first
        cascade.set_image(x)
        cascade.run_exit(k)
        np.testing.assert_allclose(cascade.logits(k), escalated[k - 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fast", PATHS)
def test_exit_statistics_are_the_softmax_of_each_files_logits(tiny_bundle, fast):
    """The entropy, top-1 probability and class each subnet file computes, which the exit
    decisions and the answer read, are those of its own logits (tests/test_export.py covers confident logits:
    the tiny bundle's are all near uniform)."""
    from device.bundle.loader import load_bundle
    from device.policy.exits import softmax_entropy
    bundle = load_bundle(tiny_bundle)
    cascade = Cascade(bundle, runtime="litert", threads=1, fast=fast)
    images, _ = bundle.eval_set()
    K = bundle.num_subnets
    for x in images[:20]:
        result = cascade.infer(x[None].astype(np.float32), [-np.inf] * K)
        for k in range(1, K + 1):
            logits = cascade.logits(k).astype(np.float64)
            entropy, score, label = cascade.exit_statistics(k)
            p = np.exp(logits[0] - logits.max())
            assert entropy == pytest.approx(float(softmax_entropy(logits)[0]), abs=1e-5)
            assert score == pytest.approx(float(p.max() / p.sum()), abs=1e-6)
            assert label == int(np.argmax(logits))
        assert (result.entropy, result.score, result.label) == cascade.exit_statistics(K)


def test_a_subnet_file_without_exit_statistics_is_refused():
    """A format-2 subnet file (f_k, logits only): refused, naming the file and the fix."""
    factory = fake_factory()

    def two_outputs(path, threads):
        interp = factory(path, threads)
        if "subnet_2" in str(path):
            interp._out = interp._out[:2]
            interp._sig["serving_default"]["outputs"].pop("output_2")
        return interp
    with pytest.raises(CascadeError, match="subnet_2: no output 'output_2'"):
        Cascade(fake_bundle(), threads=1, interpreter_factory=two_outputs)


def int8_port(scale, zero_point):
    from device.engine.stage import Port
    return Port({"index": 0, "shape": [1, 4], "dtype": np.int8, "quantization": (scale, zero_point), "name": "x"},
                np.zeros((1, 4), np.int8))


def test_quantized_ports_convert_in_place():
    port = int8_port(0.5, 3)
    port.write(np.array([[0.0, 1.0, -2.0, 100.0]], np.float32))
    assert port.array.tolist() == [[3, 5, -1, 127]]  # round(x / 0.5 + 3), clipped to int8
    out = np.zeros((1, 4), np.float32)
    port.read(out)
    np.testing.assert_allclose(out, [[0.0, 1.0, -2.0, 62.0]])


def test_int8_hand_over_requantizes_without_a_float_round_trip():
    """Trunk tensor int8 -> a subnet's int8 input: a copy when both share a quantization, else one
    table lookup that gives what dequantize-then-quantize gives, for every int8 code."""
    from device.engine.stage import hand_over
    codes = np.arange(-128, 128, dtype=np.int8)
    source = int8_port(0.1, -5)
    same, other = int8_port(0.1 * (1 + 1e-7), -5), int8_port(0.25, 7)  # one tensor, two files' rounding; another
    (copy,) = hand_over(source, same, "subnet_1", "x")
    to_indices, requantize = hand_over(source, other, "subnet_2", "x")
    assert copy.func is np.copyto and requantize.func is np.take
    for chunk in codes.reshape(-1, 4):
        source.array[0] = chunk
        copy()
        to_indices()
        requantize()
        assert same.array.tolist() == [chunk.tolist()]
        expected = np.clip(np.rint((chunk.astype(np.float64) + 5) * 0.1 / 0.25 + 7), -128, 127)
        assert other.array.tolist() == [expected.astype(np.int8).tolist()]


def float_chain_logits(files: dict, images) -> np.ndarray:
    """(K, N, classes) logits of trunk + subnets called file by file, every tensor between them
    taken through float: the reference the engine's int8 hand-over must match."""
    trunk = ModelFile(files["trunk"])
    subnets = [ModelFile(files[f"subnet_{k}"]) for k in range(1, len(files))]
    logits = []
    for image in images:
        (t,) = trunk(image[None].astype(np.float32))
        features, per_subnet = None, []
        for k, subnet in enumerate(subnets):
            features, out, _ = subnet(t) if k == 0 else subnet(t, features)
            per_subnet.append(out[0])
        logits.append(per_subnet)
    return np.asarray(logits).transpose(1, 0, 2)


def test_real_int8_files_escalate_like_a_float_chain(tiny_bundle, tmp_path):
    """int8 files on the board's engine, on either path: the tensors handed over in int8 (copied
    or requantized by a table) give the logits of the files called one by one with every
    boundary tensor taken through float."""
    from converters.quantize import export_int8
    from device.bundle import Bundle, load_bundle
    from host import checkpoint, methods
    base = load_bundle(tiny_bundle)
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    images, _ = base.eval_set()
    images = images[:40]
    files = export_int8(methods.get("concat").export_plan(net), images[:32], tmp_path)
    manifest = {**base.manifest, "precisions": {"int8": {"files": {n: p.name for n, p in files.items()}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    expected = float_chain_logits(files, images)
    for fast in PATHS:
        cascade = Cascade(Bundle(model_dir=tmp_path, manifest=manifest), runtime="litert", threads=1,
                          precision="int8", fast=fast)
        assert cascade.stages[0].port("output", "output_0").dtype == np.int8
        K = cascade.num_subnets
        for i, x in enumerate(images):
            cascade.infer(x[None].astype(np.float32), [-np.inf] * K)
            for k in range(K):
                step = cascade.stages[k + 1].port("output", "output_1").scale
                np.testing.assert_allclose(cascade.logits(k + 1)[0], expected[k, i], atol=2.01 * step)
