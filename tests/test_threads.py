"""Start-up checks of the interpreters: the thread count (the board profile's unless one thread runs
frames faster) and whether a delegate took each model file."""
import pytest

from device.engine.cascade import Cascade
from device.board.threads import keep_faster
from tests.device_fakes import FakeClock, fake_bundle, fake_factory

STAGE_COSTS = {"trunk": 0.001, "subnet_1": 0.002, "subnet_2": 0.002, "subnet_3": 0.002}


def cascades(clock, slowdown_with_threads: dict):
    """make_cascade(n) over fake interpreters whose invokes cost STAGE_COSTS x slowdown[n]."""
    made = []

    def make(threads):
        costs = {name: cost * slowdown_with_threads[threads] for name, cost in STAGE_COSTS.items()}
        made.append(Cascade(fake_bundle(), threads=threads, clock=clock,
                            interpreter_factory=fake_factory(clock=clock, costs=costs)))
        return made[-1]
    return make, made


def test_a_stalling_pool_is_dropped_for_one_thread():
    clock = FakeClock()
    make, made = cascades(clock, {4: 25.0, 1: 1.0})  # workers without cores: every op waits
    cascade, timings = keep_faster(make, 4, clock)
    assert cascade.threads == 1 and [c.threads for c in made] == [4, 1]
    assert timings == {4: pytest.approx(175.0), 1: pytest.approx(7.0)}  # through subnet 3: 7 ms x 25, 7 ms
    assert made[0].invokes["trunk"] == 1 + 2  # one untimed frame, then the 0.25 s cap stops it after two


def test_a_pool_that_helps_is_kept():
    clock = FakeClock()
    make, _ = cascades(clock, {4: 0.4, 1: 1.0})
    cascade, timings = keep_faster(make, 4, clock)
    assert cascade.threads == 4 and timings[4] < timings[1]


def test_one_thread_from_the_profile_is_not_timed():
    clock = FakeClock()
    make, made = cascades(clock, {1: 1.0})
    cascade, timings = keep_faster(make, 1, clock)
    assert cascade.threads == 1 and len(made) == 1 and timings == {}


def test_a_file_whose_convolutions_no_delegate_took_is_told_apart():
    """Node listings as the runtimes give them: the replaced nodes stay listed, and each DELEGATE
    node spans its partition's boundary tensors (tensor 0 is the input, 9 a weight)."""
    from types import SimpleNamespace

    from device.engine.delegate import runs_on_delegate

    def listing(*nodes):
        return SimpleNamespace(_get_ops_details=lambda: [{"op_name": name, "inputs": list(ins), "outputs": list(outs)}
                                                         for name, ins, outs in nodes])
    conv, add, softmax = ("CONV_2D", [0, 9], [1]), ("ADD", [1, 0], [2]), ("SOFTMAX", [2], [3])
    assert runs_on_delegate(listing(conv, add, softmax, ("DELEGATE", [0], [3]))) is True
    assert runs_on_delegate(listing(conv, add, softmax, ("DELEGATE", [0], [2]))) is True  # softmax left: cheap
    assert runs_on_delegate(listing(conv, add, softmax)) is False  # e.g. int8 files in tflite-runtime 2.14
    assert runs_on_delegate(listing(conv, add, softmax, ("DELEGATE", [2], [3]))) is False  # only the float tail
    assert runs_on_delegate(SimpleNamespace()) is None
