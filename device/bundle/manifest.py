"""The bundle manifest: the schema the host writes and the board reads.

model/manifest.json (JSON, nothing executed or unpickled):

  format, format_version        "dynedge-bundle", FORMAT_VERSION
  created                       ISO-8601 UTC time of the build
  arch, dataset, labels         e.g. "mobilenet", "cifar10", ["airplane", ...]
  data                          split sizes (train, calibration, test) and how the split was made
  input                         {"height", "width", "channels": 3, "layout": "NHWC",
                                 "color": "RGB", "dtype": "float32", "range": [0, 255],
                                 "mean_rgb", "std_rgb"}   (normalization is inside trunk)
  trunk                         {"output_shape": [1, H, W, C], "macs", "params"}
  subnets                       list, index 1..K, each:
                                  {"index", "feature_dim", "feature_offset",
                                   "macs_incremental", "macs_cumulative",
                                   "params_incremental", "params_cumulative",
                                   "accuracy" (PyTorch test top-1), "calib_accuracy",
                                   "entropy_quantiles" (QUANTILE_POINTS floats)}
  precisions                    {"fp32": {...}, "int8": {...} (optional)}, each:
                                  {"trunk": "trunk.tflite",
                                   "subnets": ["subnet_1.tflite", ...],
                                   "parity": {<file>: {"max_abs_logit_diff",
                                              "top1_agreement", "exit_agreement",
                                              "top1", "max_abs_entropy_diff"
                                              (subnet files)}}}
  files                         {<path relative to model/>: {"sha256", "bytes"}}
                                (every file the bundle ships under model/, the eval set too)
  router                        {"control": "frontier", "initial", "floor",
                                 "curve": [{"control", "levels": [K-1 exit levels],
                                            "accuracy", "mean_macs",
                                            "exit_fractions": [K floats]}, ...]}
                                curve point i has control i / (P - 1); its levels turn
                                into thresholds through entropy_quantiles
                                (device/policy/exits.py). floor: below it calibration
                                shows no accuracy gain, so the router never goes lower.
  eval_set                      {"file": "eval.npz", "count"} or null; eval.npz holds
                                "images" (N, H, W, 3) uint8 RGB and "labels" (N,) int64.

Subnet k's TFLite file takes (trunk tensor, features [f_1..f_{k-1}]) and returns
(features [f_1..f_k], logits_k, exit statistics) with signature inputs "args_0", "args_1" and outputs
"output_0", "output_1", "output_2"; subnet 1 takes the trunk tensor alone ("args_0"). The
exit statistics are float32 (1, 3): [softmax entropy in nats, top-1 probability, top-1 class
index] of logits_k, computed inside the file so that the board's exit decision and answer
read three numbers. Subnet k's features output is subnet k+1's features input as it stands.
"""
from device.errors import UserError

FORMAT_NAME = "dynedge-bundle"
FORMAT_VERSION = 4  # 2: the router curve carries per-subnet exit levels; 3: subnet files output exit
# statistics; 4: subnet k outputs [f_1..f_k], not f_k
MANIFEST_NAME = "manifest.json"

REQUIRED_KEYS = (
    "format", "format_version", "arch", "dataset", "labels", "input", "trunk",
    "subnets", "precisions", "files", "router",
)
SUBNET_KEYS = (
    "index", "feature_dim", "feature_offset", "macs_incremental", "macs_cumulative",
    "params_incremental", "params_cumulative", "accuracy", "entropy_quantiles",
)


class ManifestError(UserError, ValueError):
    """A manifest that this runtime cannot trust or does not understand."""


def validate_manifest(manifest: dict) -> dict:
    """Check format, version and required fields; return the manifest or raise ManifestError."""
    if manifest.get("format") != FORMAT_NAME:
        raise ManifestError(f"not a dynedge bundle manifest (format={manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(
            f"bundle format version {manifest.get('format_version')!r} is not supported by this "
            f"runtime (expects {FORMAT_VERSION}); rebuild the bundle or update the runtime")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"manifest lacks field(s): {', '.join(missing)}")
    for sub in manifest["subnets"]:
        lacking = [k for k in SUBNET_KEYS if k not in sub]
        if lacking:
            raise ManifestError(f"manifest subnet {sub.get('index', '?')} lacks: {', '.join(lacking)}")
    curve = manifest["router"].get("curve")
    if not curve or any("levels" not in point for point in curve):
        raise ManifestError("manifest router curve is missing or lacks per-subnet exit levels; rebuild the bundle")
    if "fp32" not in manifest["precisions"]:
        raise ManifestError("manifest has no fp32 precision entry")
    return manifest
