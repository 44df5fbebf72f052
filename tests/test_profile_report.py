"""device/profile.py on a small real bundle in --quick mode: the JSON sections, the Markdown units,
the plots, both runtimes, a bundle without labeled images, and bad input."""
import json
import re

import pytest

from device.profiling import plots
from device.flags import run_cli
from device.profiling.profiler import main
from tests.profile_runs import TFLITE_RUNTIME_PYTHON, quick_profile, without_eval_set

SECTIONS = ("board", "runtime", "bundle", "load", "stages", "subnets", "cache", "threads", "cascade",
            "router", "router_trace", "memory", "thermal", "system", "skipped")
STATS = ("mean", "p50", "p95", "p99", "std")
# Table columns that hold names or states, not figures: every other column must name a unit.
TEXT_COLUMNS = {"#", "what", "unit", "source", "status", "subnet", "stage", "policy", "figure",
                "escalation 1 -> K", "value"}


@pytest.fixture(scope="module")
def report(tiny_bundle, tmp_path_factory):
    return quick_profile(tiny_bundle, tmp_path_factory.mktemp("profile"))


def tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, separator dropped)."""
    found, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def test_json_has_every_section(report):
    data, _ = report
    assert all(section in data for section in SECTIONS)
    assert data["mode"] == "quick"
    k = data["bundle"]["subnets"]
    assert [s["index"] for s in data["subnets"]] == list(range(1, k + 1))
    for sub in data["subnets"]:
        for kind in ("incremental_ms", "cumulative_ms"):
            assert all(sub[kind][stat] > 0 for stat in STATS)
    # Structure only: which is faster is for the benchmark, not a test on a shared machine.
    assert data["load"]["bundle_load_ms"] > 0 and data["load"]["first_inference_ms"] > 0
    cache = data["cache"]
    assert cache["ratio"] == pytest.approx(cache["with_cache_ms"]["p50"] / cache["recompute_ms"]["p50"])
    assert data["threads"] and all(t["full_ms"]["p50"] > 0 for t in data["threads"])
    assert len(data["router"]) >= 2
    for run in data["router"]:
        assert sum(run["exit_mix"]) == pytest.approx(1.0)
        assert 0.0 <= run["accuracy"] <= 1.0
    assert all(0.0 <= s["accuracy"] <= 1.0 for s in data["subnets"])
    assert len(data["router_trace"]["latency_ms"]) == len(data["router_trace"]["exit_subnet"])
    assert data["memory"]["peak_rss_mib"] > 0
    stages = ["trunk"] + [f"subnet_{i}" for i in range(1, k + 1)]
    assert data["runtime"]["on_delegate"] == dict.fromkeys(stages, True)  # fp32: XNNPACK takes every file
    thermal = data["thermal"]
    assert thermal["sensor_available"] == (thermal["before_c"] is not None)


def test_markdown_names_every_figures_unit(report):
    _, out = report
    markdown = (out / "report.md").read_text()
    found = tables(markdown)
    assert len(found) >= 6
    for table in found:
        header, rows = table[0], table[1:]
        for column in header:
            assert column in TEXT_COLUMNS or re.search(r"\([^)]+\)", column), column
        if "unit" in header:
            unit = header.index("unit")
            assert all(row[unit] for row in rows)
        if "status" in header:
            status = header.index("status")
            assert all(row[status] for row in rows)
    assert "measured" in markdown and "manifest (host)" in markdown


def test_plots_written_beside_the_report(report):
    _, out = report
    if not plots.matplotlib_available():
        pytest.skip("matplotlib is not installed")
    for name in plots.PLOT_FILES.values():
        assert (out / name).stat().st_size > 1000
        assert f"]({name})" in (out / "report.md").read_text()


@pytest.mark.skipif(not TFLITE_RUNTIME_PYTHON.exists(), reason="no .venv-tflrt (tflite-runtime 2.14)")
def test_tflite_runtime_board_without_matplotlib(tiny_bundle, tmp_path_factory):
    data, out = quick_profile(tiny_bundle, tmp_path_factory.mktemp("tflrt"), TFLITE_RUNTIME_PYTHON)
    assert data["runtime"]["name"] == "tflite-runtime" and data["runtime"]["numpy"].startswith("1.")
    assert all(data["runtime"]["on_delegate"].values())  # its XNNPACK takes fp32 files
    markdown = (out / "report.md").read_text()
    assert "python host/report.py --plots" in markdown
    assert not list(out.glob("*.png"))


def test_bundle_without_labeled_images_skips_accuracy(tiny_bundle, tmp_path, capsys):
    bundle = without_eval_set(tiny_bundle, tmp_path / "no-eval")
    out = tmp_path / "report"
    assert run_cli(main, ["--bundle", str(bundle), "--board", "x86_64", "--out", str(out),
                         "--quick", "--threads", "1"]) == 0
    markdown = (out / "report.md").read_text()
    assert "skipped" in markdown and "no labeled images" in markdown
    data = json.loads((out / "report.json").read_text())
    assert data["bundle"]["eval_images"] == 0 and data["skipped"]
    assert all(s["accuracy"] is None for s in data["subnets"])
    assert all(r["accuracy"] is None for r in data["router"])


@pytest.mark.parametrize("argv, needle", [
    (["--board", "orange-pi"], "known boards: jetson-nano"),
    (["--bundle", "/nonexistent/bundle"], "/nonexistent/bundle"),
    (["--threads", "0"], "--threads"),
    (["--budgets", "5ms,abc"], "--budget 'abc'"),
])
def test_bad_input_is_one_error_line(tiny_bundle, capsys, argv, needle):
    full = ["--bundle", str(tiny_bundle), *argv] if "--bundle" not in argv else argv
    assert run_cli(main, full + ["--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
