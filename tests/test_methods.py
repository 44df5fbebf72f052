"""The method frame: --method, bundle format 5's ladder checks, and one engine for a ladder
without reuse (a width-switching method's) beside concat's."""
from pathlib import Path

import numpy as np
import pytest

from device.bundle import ManifestError, validate_manifest
from device.bundle.manifest import FORMAT_NAME, check_growing_cost
from device.engine import Cascade
from device.flags import Parser
from host import methods
from host.cli import add_training_args, resolve_settings
from tests.device_fakes import FakeClock, fake_factory, fake_width_bundle, width_logits

REPO = Path(__file__).resolve().parents[1]
NEVER = [-np.inf, -np.inf, -np.inf]


def image(seed=0, size=8):
    return np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype(np.float32)


def test_an_unknown_method_is_refused_with_the_list():
    args = add_training_args(Parser()).parse_args(["--method", "nosuch"])
    with pytest.raises(methods.MethodError) as caught:
        resolve_settings(args)
    assert all(name in str(caught.value) for name in methods.METHODS)


def test_a_bundle_of_format_4_is_refused_with_a_rebuild_message():
    with pytest.raises(ManifestError, match="version 4 .*rebuild the bundle with host/build.py"):
        validate_manifest({"format": FORMAT_NAME, "format_version": 4})


def test_a_ladder_that_does_not_grow_in_cost_is_refused_naming_the_exit():
    exits = [{"index": 1, "macs_alone": 10}, {"index": 2, "macs_alone": 30}, {"index": 3, "macs_alone": 30}]
    with pytest.raises(ManifestError, match="exit 3 costs 30 MACs, not more than exit 2"):
        check_growing_cost(exits)


def test_without_reuse_each_exit_runs_its_own_stage_from_the_image():
    cascade = Cascade(fake_width_bundle(), threads=1, interpreter_factory=fake_factory())
    x = image(3)
    result = cascade.infer(x, [-1.0, -1.0, np.inf])  # thresholds no entropy meets: escalate to the top
    assert result.exit_subnet == 3
    assert cascade.invokes == {"width_1": 1, "width_2": 1, "width_3": 1}
    for k in (1, 2, 3):
        np.testing.assert_allclose(cascade.logits(k), width_logits(x, k), rtol=1e-6)


def test_an_exit_that_never_answers_is_passed_by_when_its_stages_are_its_own():
    """fixed:3 of a width ladder runs width 3 alone; concat's fixed:3 still runs 1 and 2 (free)."""
    cascade = Cascade(fake_width_bundle(), threads=1, interpreter_factory=fake_factory())
    assert cascade.infer(image(), NEVER).exit_subnet == 3
    assert cascade.invokes == {"width_1": 0, "width_2": 0, "width_3": 1}


def timed_width_cascade() -> Cascade:
    """A width ladder on a fake clock whose widths take 2, 6 and 12 ms, warmed up."""
    clock = FakeClock()
    costs = {"width_1": 0.002, "width_2": 0.006, "width_3": 0.012}
    cascade = Cascade(fake_width_bundle(), threads=1, interpreter_factory=fake_factory(clock=clock, costs=costs),
                      clock=clock)
    cascade.warm_up(rounds=2)
    return cascade


def test_the_deadline_guard_prices_the_next_exits_own_stages():
    cascade = timed_width_cascade()
    cut = cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.010)  # 2 + 6 ms fit, + 12 does not
    assert (cut.exit_subnet, cut.deadline_cut, cut.stages) == (2, True, (0, 1))
    assert cut.escalated_s == pytest.approx(0.006)
    top = cascade.infer(image(), NEVER)  # width 3 alone: all of it is beyond what exit 1 needs
    assert top.stages == (2,) and top.escalated_s == pytest.approx(0.012)


def test_without_reuse_the_guard_runs_the_widest_exit_that_fits_alone():
    """Widths of 2, 6 and 12 ms, all tried: within 13 ms bottom-up would answer with width 2
    (2 + 6, then 12 more would pass); width 3 alone fits, so the frame runs it alone."""
    cascade = timed_width_cascade()
    wide = cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.013)
    assert (wide.exit_subnet, wide.deadline_cut, wide.stages) == (3, True, (2,))
    # 15 ms: width 3 and, of the exits below it, width 1 (2 + 12); width 2 would not fit as well
    kept = cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.015)
    assert (kept.exit_subnet, kept.stages) == (3, (0, 2))
    # width 3 alone does not fit 7 ms: width 2 is the widest that does, and exit 1 not beside it
    low = cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.007)
    assert (low.exit_subnet, low.stages) == (2, (1,))
    # an exit the thresholds pass by may still be the one that fits: fixed:3 at 7 ms runs width 2
    assert cascade.infer(image(), NEVER, deadline_s=0.007).stages == (1,)
    # all of it fits: nothing trimmed
    full = cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.030)
    assert (full.exit_subnet, full.deadline_cut, full.stages) == (3, False, (0, 1, 2))
    # nothing fits: the first exit answers, as bottom-up
    assert cascade.infer(image(), [-1.0, -1.0, np.inf], deadline_s=0.001).stages == (0,)


def test_an_early_answer_still_stops_a_planned_frame():
    cascade = timed_width_cascade()
    result = cascade.infer(image(), [np.inf, -1.0, np.inf], deadline_s=0.015)  # exit 1 always answers
    assert (result.exit_subnet, result.stages, result.deadline_cut) == (1, (0,), False)


def test_concat_is_the_default_and_its_widths_sum_to_at_most_1():
    args = add_training_args(Parser()).parse_args([])
    settings = resolve_settings(args)
    assert settings.net.method == "concat" and sum(settings.net.widths) == pytest.approx(1.0)


@pytest.fixture(scope="module", params=["slimmable", "single-path"])
def method_bundle(request, tmp_path_factory, cifar_tar):
    """A real tiny bundle of each width-switching method, built through host/build.py."""
    from tests.fixtures_bundle import build_tiny_bundle
    return request.param, build_tiny_bundle(tmp_path_factory.mktemp(request.param), cifar_tar, request.param)


@pytest.mark.slow
def test_each_method_trains_exports_and_passes_parity_through_the_engine(method_bundle):
    import json
    method, folder = method_bundle
    manifest = json.loads((folder / "model" / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["format_version"] == 5
    assert [len(e["stages"]) for e in manifest["exits"]] == [1, 1, 1]  # no reuse: each exit is a stage
    macs = [e["macs_alone"] for e in manifest["exits"]]
    assert macs == sorted(macs) and len(set(macs)) == 3
    parity = manifest["precisions"]["fp32"]["parity"]
    assert len(parity) == 3 and all(f["top1_agreement"] >= 0.999 for f in parity.values())


@pytest.mark.slow
def test_each_method_runs_in_the_daemon_on_a_video(method_bundle, tmp_path):
    import json
    import subprocess
    import sys

    from tests.test_sources import write_video
    _, folder = method_bundle
    video = write_video(tmp_path / "clip.avi", frames=8)
    log = tmp_path / "frames.jsonl"
    done = subprocess.run([sys.executable, "device/run_camera.py", "--bundle", str(folder), "--source", str(video),
                           "--budget", "40ms", "--log", str(log), "--board", "x86_64", "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 8 and all(1 <= r["exit_subnet"] <= 3 for r in lines)


@pytest.mark.slow
def test_the_comparison_runs_end_to_end_on_a_tiny_budget(tmp_path, cifar_tar):
    """bench/compare_methods.py --smoke: every method built, measured through the engine, the
    table, the claim rows and the plot written."""
    import json
    import os
    import subprocess
    import sys
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "bench/compare_methods.py", "--scale", "cifar", "--data", str(cifar_tar),
                           "--smoke", "--limit-train", "64", "--limit-test", "1000", "--epochs", "1",
                           "--work", str(tmp_path / "work"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "compare_methods.json").read_text())["scales"]["cifar"]
    assert list(report["methods"]) == list(methods.METHODS)
    for entry in report["methods"].values():
        assert len(entry["exits"]) == 3 and all(e["p50_ms"] > 0 for e in entry["exits"])
        assert len(entry["router"]) == 3
    assert {row["method"] for row in report["claim"]} == {"slimmable", "single-path"}
    assert (out / "compare_methods.png").stat().st_size > 0 and "Seed-000 claim" in (out / "compare_methods.md").read_text()


@pytest.mark.slow
def test_each_method_is_profiled_like_concat(method_bundle, tmp_path):
    import json
    import subprocess
    import sys
    _, folder = method_bundle
    done = subprocess.run([sys.executable, "device/profile.py", "--bundle", str(folder), "--board", "x86_64", "--quick",
                           "--out", str(tmp_path / "report")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["bundle"]["method"] == folder.name.split("-", 2)[2]
    assert [s["stages"] for s in report["subnets"]] == [[stage["name"]] for stage in report["stages"]]  # one each
    assert all(s["incremental_ms"]["p50"] > 0 for s in report["subnets"])
