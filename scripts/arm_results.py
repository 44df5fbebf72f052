"""The host side of scripts/check_arm.sh: its input files, and its results report.

    arm_results.py inputs --bundle DIR --dir OUT [--images N]
        N of the bundle's eval images, evenly spaced, as PNG files (lossless, so every decoder
        reads the same pixels), and the first CLIP_FRAMES of them as an MJPG video
    arm_results.py report --bundle DIR --dir WORK --arch "arm64 armhf" --command CMD --out PREFIX

`report` reads WORK/host and WORK/<arch> (run_camera.py's JSON lines, install.py's report,
profile.py's report.json, the exit statuses check_arm.sh saved) and writes PREFIX.json and
PREFIX.md: what installed, frames answered, labels equal to the host's, top-1 on the eval
images emulated and on the host. No timing is read: under emulation it says nothing about a board.
Emulated floating point is slow (about 2 s a frame for the tiny bundle under qemu 10), hence a
subset of the eval images by default.
"""
import argparse
import json
import sys
from pathlib import Path

CLIP_FRAMES = 20
IMAGES = 100
RUNS = ("video", "images")


def read_labels(path: Path) -> list:
    """The label of each frame of a run_camera.py JSON-lines log, in frame order."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        if "frame" in row and "label" in row:
            rows.append((row["frame"], row["label"]))
    return [label for _, label in sorted(rows)]


def compare(host: list, emulated: list) -> dict:
    """Frames answered and how many of the first min(len) labels equal the host's."""
    equal = sum(a == b for a, b in zip(host, emulated))
    differ = [i for i, (a, b) in enumerate(zip(host, emulated)) if a != b]
    return {"host_frames": len(host), "frames": len(emulated), "labels_equal": equal,
            "first_differing_frames": differ[:10]}


def top1(labels: list, truth: list) -> float | None:
    """Share of answers equal to the true label names; None when the counts differ."""
    if not labels or len(labels) != len(truth):
        return None
    return sum(a == b for a, b in zip(labels, truth)) / len(truth)


def _read(path: Path):
    return path.read_text().strip() if path.exists() else None


def target_result(run_dir: Path, host: dict, truth: list) -> dict:
    """One emulated target's figures from the files check_arm.sh left in run_dir."""
    result = {"install_exit": int(_read(run_dir / "install.rc") or -1)}
    install = run_dir / "install.json"
    result["install"] = json.loads(install.read_text()) if install.exists() else None
    for run in RUNS:
        log = run_dir / f"{run}.jsonl"
        labels = read_labels(log) if log.exists() else []
        result[run] = {"exit": None if _read(run_dir / f"{run}.rc") is None else int(_read(run_dir / f"{run}.rc")),
                       **compare(host[run], labels)}
        if run == "images":
            result[run]["top1"] = top1(labels, truth)
            result[run]["host_top1"] = top1(host[run], truth)
    report = run_dir / "profile" / "report.json"
    result["profile"] = {"exit": None if _read(run_dir / "profile.rc") is None else int(_read(run_dir / "profile.rc"))}
    if report.exists():
        data = json.loads(report.read_text())
        result["profile"].update(runtime=data["runtime"]["name"], machine=data["board"]["machine"],
                                 eval_images=data["bundle"]["eval_images"],
                                 subnet_accuracy=[s["accuracy"] for s in data["subnets"]])
    return result


def passed(result: dict) -> bool:
    """Installed, and both runs answered every frame with the host's labels."""
    return result["install_exit"] == 0 and all(
        result[run]["exit"] == 0 and result[run]["frames"] == result[run]["host_frames"]
        == result[run]["labels_equal"] > 0 for run in RUNS) and result["profile"]["exit"] == 0


def _pct(x):
    return "n/a" if x is None else f"{x:.2%}"


def markdown(summary: dict) -> str:
    """The results file: what each emulated target installed and answered."""
    lines = [f"# Board installs under ARM emulation (qemu-user {summary['qemu']})", "",
             f"`{summary['command']}`", "",
             f"Bundle `{summary['bundle']}` ({summary['subnets']} subnets, fp32), run at `fixed:{summary['subnets']}` "
             f"(the largest subnet, so no answer depends on timing) with one thread. The host ran the same files "
             f"with {summary['host_runtime']}. Debian bookworm arm64 and armhf userlands stand in for Raspberry Pi "
             f"OS 64- and 32-bit; each installed with `sh device/install.sh` from the package index alone. Timings "
             f"under emulation mean nothing for a board and are not reported.", "",
             "| target | installed | video: frames (host) | video: labels = host | eval images: frames (host) "
             "| eval images: labels = host | top-1 emulated | top-1 host | profile.py --quick | pass |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arch, r in summary["targets"].items():
        installed = "failed (exit %d)" % r["install_exit"] if not r["install"] else \
            f"{r['install']['target']}, Python {r['install']['python']}: " + ", ".join(
                f"{name} {p['version']} ({p['from']})" for name, p in r["install"]["packages"].items())
        v, i, p = r["video"], r["images"], r["profile"]
        prof = "not run" if p["exit"] is None else f"exit {p['exit']}" + (f", {p['runtime']}" if "runtime" in p else "")
        lines.append(f"| {arch} | {installed} | {v['frames']} ({v['host_frames']}) | {v['labels_equal']} "
                     f"| {i['frames']} ({i['host_frames']}) | {i['labels_equal']} | {_pct(i['top1'])} "
                     f"| {_pct(i['host_top1'])} | {prof} | {'yes' if r['passed'] else 'no'} |")
    lines += ["", "The eval images are %d of the bundle's %d, evenly spaced, as PNG files; the video is the first "
              "%d of them as MJPG. Labels are compared frame by frame with the host's answers to the same file. "
              "The qemu CPU models are a Pi 5's (arm64, cortex-a76) and an ARMv7 (armhf, cortex-a15)." %
              (summary["eval_images"], summary["eval_total"], CLIP_FRAMES), ""]
    return "\n".join(lines)


def pick(total: int, count: int) -> list:
    """`count` evenly spaced indices of `total` (eval sets are stored class by class)."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


def make_inputs(bundle: Path, out: Path, count: int) -> None:
    """PNG files of `count` eval images, their indices (indices.json), an MJPG clip of the first CLIP_FRAMES."""
    import cv2
    import numpy as np
    data = np.load(bundle / "model" / "eval.npz")
    indices = pick(len(data["labels"]), count)
    images = data["images"][indices]
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "indices.json").write_text(json.dumps(indices))
    for index, rgb in enumerate(images):
        cv2.imwrite(str(out / "eval" / f"{index:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    h, w = images.shape[1:3]
    writer = cv2.VideoWriter(str(out / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    if not writer.isOpened():
        raise SystemExit("arm_results: OpenCV cannot write an MJPG video here")
    for rgb in images[:CLIP_FRAMES]:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def make_report(args) -> dict:
    manifest = json.loads((args.bundle / "model" / "manifest.json").read_text())
    import numpy as np
    indices = json.loads((args.dir / "inputs" / "indices.json").read_text())
    truth = [manifest["labels"][int(i)] for i in np.load(args.bundle / "model" / "eval.npz")["labels"][indices]]
    host = {run: read_labels(args.dir / "host" / f"{run}.jsonl") for run in RUNS}
    targets = {}
    for arch in args.arch.split():
        targets[arch] = target_result(args.dir / arch, host, truth)
        targets[arch]["passed"] = passed(targets[arch])
    import subprocess
    qemu = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout.split()
    from importlib import metadata
    return {"command": args.command, "bundle": args.bundle.name, "subnets": len(manifest["exits"]),
            "eval_images": len(truth), "eval_total": int(manifest["eval_set"]["count"]), "qemu": qemu[2] if len(qemu) > 2 else "?",
            "host_runtime": f"ai-edge-litert {metadata.version('ai-edge-litert')}", "targets": targets}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["inputs", "report"])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--arch", default="arm64 armhf")
    parser.add_argument("--images", type=int, default=IMAGES, help=f"eval images to run (default {IMAGES})")
    parser.add_argument("--command", default="scripts/check_arm.sh")
    parser.add_argument("--out", type=Path, default=Path("bench/results/arm_emulation"))
    args = parser.parse_args(argv)
    if not (args.bundle / "model" / "eval.npz").exists():
        print(f"arm_results: {args.bundle} has no model/eval.npz: pass a bundle built by host/build.py",
              file=sys.stderr)
        return 2
    if args.step == "inputs":
        make_inputs(args.bundle, args.dir, args.images)
        return 0
    summary = make_report(args)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))
    return 0 if all(t["passed"] for t in summary["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
