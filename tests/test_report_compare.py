"""host/report.py: a comparison of several reports, plots drawn on the host, and bad input."""
import json
import re

import pytest

from device.profiling import plots
from device.flags import run_cli
from host.report import main
from tests.profile_runs import quick_profile, without_eval_set


@pytest.fixture(scope="module")
def two_reports(tiny_bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    first = quick_profile(tiny_bundle, root)[1] / "report.json"
    second = quick_profile(without_eval_set(tiny_bundle, root / "no-eval"), root, board="rpi4")[1]
    return first, second / "report.json"


def test_comparison_table_and_overlaid_plots(two_reports, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert run_cli(main, [*map(str, two_reports), "--out", str(out), "--labels", "host,pi"]) == 0
    markdown = (out / "comparison.md").read_text()
    assert markdown == capsys.readouterr().out.rstrip("\n") + "\n"
    header = next(line for line in markdown.splitlines() if line.startswith("| figure"))
    assert header == "| figure (unit) | host | pi |"
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    text_rows = {"board", "bundle", "precision", "runtime", "mode"}
    for row in rows:
        label = row.split("|")[1].strip()
        assert label in text_rows or re.search(r"\([^)]+\)", label), label
    assert "| board | x86_64 | rpi4 |" in markdown
    assert re.search(r"\| subnet 1 top-1, measured \(%\) \| [\d.]+ \| n/a \|", markdown)
    if plots.matplotlib_available():
        assert (out / "accuracy_vs_latency.png").stat().st_size > 1000
        assert (out / "subnet_latency.png").stat().st_size > 1000


def test_plots_drawn_on_the_host_from_a_report(two_reports, tmp_path):
    if not plots.matplotlib_available():
        pytest.skip("matplotlib is not installed")
    assert run_cli(main, ["--plots", str(two_reports[1]), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(plots.PLOT_FILES.values())


def test_bad_input_is_one_error_line(tmp_path, capsys):
    not_report = tmp_path / "other.json"
    not_report.write_text(json.dumps({"format": "something-else"}))
    for argv, needle in ([str(tmp_path / "missing.json")], "does not exist"), \
                        ([str(not_report)], "not a dynedge profile report"), \
                        ([], "give report.json files"):
        assert run_cli(main, argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
