"""Quick profile runs shared by the report tests: each (bundle, python) pair is profiled once a session."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TFLITE_RUNTIME_PYTHON = REPO / ".venv-tflrt" / "bin" / "python"
_done: dict = {}


def quick_profile(bundle: Path, out_root: Path, python: Path | str = sys.executable,
                  board: str = "x86_64") -> tuple[dict, Path]:
    """Run `python device/profile.py --quick --threads 1` from the repository root.

    One thread: the test machine is shared, and a TFLite thread pool larger than the free cores
    spin-waits (tflite-runtime 2.14 measured ~100x slower with 2 threads on 2 busy cores).
    Returns (report, report folder)."""
    key = (str(bundle), str(python), board)
    if key not in _done:
        out = out_root / f"report-{len(_done)}"
        proc = subprocess.run([str(python), "device/profile.py", "--bundle", str(bundle),
                               "--board", board, "--out", str(out), "--quick", "--threads", "1"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        _done[key] = (json.loads((out / "report.json").read_text()), out)
    return _done[key]


def without_eval_set(bundle: Path, dest: Path) -> Path:
    """A copy of `bundle` whose manifest carries no labeled images (eval_set null)."""
    shutil.copytree(bundle, dest)
    manifest_path = dest / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    eval_file = (manifest.get("eval_set") or {}).get("file")
    if eval_file:
        manifest["files"].pop(eval_file, None)
        (dest / "model" / eval_file).unlink()
    manifest["eval_set"] = None
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return dest
