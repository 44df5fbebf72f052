"""host/build.py end to end, timed from an empty decoded-data cache, with its stage lines and summary.

    python bench/timed_build.py --name camera -- --arch mobilenet \
        --data ../shared/datasets/imagenette-160.tar.gz --preset camera --quantize int8

Runs the build in a fresh process with DYNEDGE_CACHE pointing at an empty folder (so decoding
counts, as on a new machine), and writes bench/results/build_<name>.{md,json} (--out for another
folder): the command, wall seconds, the host and its load average at the start, and the build's
own lines as printed (progress bars left out).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.results_files import command_line, write_results  # noqa: E402
from device.flags import Parser, UsageError, add_out, run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def printed_lines(text: str) -> list:
    """The build's lines without tqdm's progress bars (carriage-return redraws)."""
    return [line for line in text.replace("\r", "\n").splitlines()
            if line.strip() and not ("it/s" in line or "step/s" in line or "s/step" in line or "?step" in line
                                     or "batch/s" in line or "img/s" in line or "file/s" in line)]


def markdown(report: dict) -> str:
    return "\n".join([
        f"# `host/build.py` end to end: {report['name']}", "", f"Command: `{report['command']}`", "",
        f"Build: `{report['build']}`", "",
        f"Date: {report['date']}. Host: {report['cpu']}, {report['cores']} cores, load average at start "
        f"{report['load_at_start']:.2f}; an empty decoded-data cache. Exit status {report['returncode']}, "
        f"wall time **{report['seconds'] / 60:.1f} min** ({report['seconds']:.0f} s).", "",
        "The build's own lines:", "", "```", *report["lines"], "```", ""])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, build_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = Parser(prog="timed_build.py", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the result files' name: build_<name>.md/json")
    add_out(parser, "results folder", "bench/results")
    args = parser.parse_args(ours)
    if not build_args:
        raise UsageError("give host/build.py's flags after --, e.g. -- --arch mobilenet --data DATA --preset camera")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    cmd = [sys.executable, str(REPO / "host" / "build.py"), *build_args]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dynedge-empty-cache-") as cache:
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "DYNEDGE_CACHE": cache},
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
    report = {"name": args.name, "command": command_line(), "build": shlex.join(["python", "host/build.py", *build_args]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cores": os.cpu_count(),
              "load_at_start": load, "returncode": proc.returncode, "seconds": seconds,
              "lines": printed_lines(proc.stderr + proc.stdout)}
    write_results(args.out or REPO / "bench" / "results", f"build_{args.name}", report, markdown(report))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(run_cli(main))
