"""bench/compare_methods.py's arithmetic on made-up runs: the matching rule of the seed-000 claim,
means and spread over seeds, the per-seed verdicts, and which finished builds --reuse takes."""
import json

import pytest

from bench import compare_methods as cm


def run(method, seed, exits):
    """A run as build_one + the measurements leave it: exits as (MMACs, test top-1, p50 ms)."""
    return {"method": method, "seed": seed, "train_s": 10.0 + seed,
            "load": {"load_s": 0.1, "peak_rss_mib": 50.0 + seed},
            "router": [{"budget_ms": 1.0, "top1": 0.5, "p50_ms": 0.9, "p95_ms": 1.0}],
            "exits": [{"index": i + 1, "stages": [f"s{i + 1}"], "macs": macs * 1e6, "macs_cumulative": macs * 1e6,
                       "params": 100, "top1": top1, "p50_ms": p50, "p95_ms": p50, "board_top1": top1}
                      for i, (macs, top1, p50) in enumerate(exits)]}


def test_claim_matches_cheapest_concat_exit_within_tolerance():
    runs = [run("concat", 0, [(10, 0.50, 0.3), (20, 0.597, 0.5), (30, 0.62, 0.7)]),
            run("slimmable", 0, [(20, 0.52, 0.4), (80, 0.60, 1.0)])]
    [row] = cm.seed_claim(cm.mean_over_seeds(runs))
    # 0.597 is within 0.5 pp of 0.60: concat exit 2 matches, at 20/80 MACs and 0.5/1.0 p50
    assert row["matched"] and row["concat_exit"] == 2
    assert row["macs_ratio"] == pytest.approx(0.25) and row["p50_ratio"] == pytest.approx(0.5)
    assert cm.holds(row)
    # the other way: slimmable's cheapest exit within 0.5 pp of concat's best (0.62): none
    assert "at_concat_best" not in row


def test_claim_not_reached_is_not_held():
    runs = [run("concat", 0, [(10, 0.40, 0.3), (20, 0.45, 0.5)]),
            run("slimmable", 0, [(20, 0.447, 0.4), (80, 0.60, 1.0)])]
    [row] = cm.seed_claim(cm.mean_over_seeds(runs))
    assert not row["matched"] and not cm.holds(row)
    assert row["at_concat_best"]["exit"] == 1  # 0.447 is within 0.5 pp of 0.45


def test_seeds_are_averaged_with_their_spread_and_judged_one_by_one():
    runs = [run("concat", 0, [(10, 0.50, 0.3), (20, 0.60, 0.5)]),
            run("slimmable", 0, [(20, 0.52, 0.4), (80, 0.60, 1.0)]),
            run("concat", 1, [(10, 0.48, 0.3), (20, 0.56, 0.5)]),
            run("slimmable", 1, [(20, 0.50, 0.4), (80, 0.62, 1.0)])]
    table = cm.mean_over_seeds(runs)
    top = table["concat"]["exits"][1]
    assert top["top1"] == pytest.approx(0.58) and top["top1_spread"] == pytest.approx(0.04)
    assert table["slimmable"]["train_s"] == pytest.approx(10.5) and table["slimmable"]["peak_rss_mib"] == 51.0
    per_seed = cm.claim_per_seed(runs)
    assert [cm.holds(rows[0]) for rows in per_seed.values()] == [True, False]
    [line] = cm.per_seed_lines({"claim": cm.seed_claim(table), "runs": runs})
    assert "holds in 1 of 2" in line and "seed 1: not reached" in line


def test_reuse_takes_only_a_finished_build_with_the_same_flags(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "model").mkdir(parents=True)
    flags = ["--method", "concat", "--seed", "1"]
    (tmp_path / cm.BUILD_RECORD).write_text(json.dumps({"flags": flags, "bundle": str(bundle), "build_s": 5.0}))
    assert cm.finished_build(tmp_path, flags) is None          # no manifest: the build did not finish
    (bundle / "model" / "manifest.json").write_text("{}")
    assert cm.finished_build(tmp_path, flags)["build_s"] == 5.0
    assert cm.finished_build(tmp_path, ["--method", "concat", "--seed", "2"]) is None
    assert cm.finished_build(tmp_path / "elsewhere", flags) is None
