"""The bundle manifest: the schema the host writes and the board reads (format 5: stages and exits).

model/manifest.json (JSON, nothing executed or unpickled):

  format, format_version        "dynedge-bundle", FORMAT_VERSION
  created                       ISO-8601 UTC time of the build
  method                        "concat" (the kit's own network), "slimmable", "single-path", ...
  arch, dataset, labels         e.g. "mobilenet", "cifar10", ["airplane", ...]
  data                          split sizes (train, calibration, test) and how the split was made
  input                         {"height", "width", "channels": 3, "layout": "NHWC",
                                 "color": "RGB", "dtype": "float32", "range": [0, 255],
                                 "mean_rgb", "std_rgb"}   (normalization is inside the files)
  stages                        one per model file, in an order where every source comes first:
                                  {"name", "inputs": [{"name": <signature input>, "from": "image"
                                   or "<stage>.<output>"}], "outputs": {<output>: <signature
                                   output>}, "macs", "params"}
  exits                         the ladder, index 1..K, each:
                                  {"index", "stages" (the stages it needs, sources first),
                                   "answer" (the stage whose outputs "logits" and "statistics"
                                   answer it), "macs_alone" (its stages from the image),
                                   "macs_incremental", "macs_cumulative" (answering at k after
                                   trying exits 1..k-1), "params" (its stages'), "accuracy"
                                   (PyTorch test top-1), "calib_accuracy",
                                   "entropy_quantiles" (QUANTILE_POINTS floats)}
  precisions                    {"fp32": {...}, "int8": {...} (optional)}, each:
                                  {"files": {<stage>: <file>}, "parity": {<file>: {
                                   "max_abs_logit_diff", "top1_agreement", "exit_agreement",
                                   "top1", "max_abs_entropy_diff"}} (answering files),
                                   "cascade": {"exit_agreement", "top1", "images"}}
  files                         {<path relative to model/>: {"sha256", "bytes"}}
                                (every file the bundle ships under model/, the eval set too)
  router                        {"control": "frontier", "initial", "floor",
                                 "curve": [{"control", "levels": [K-1 exit levels],
                                            "accuracy", "mean_macs",
                                            "exit_fractions": [K floats]}, ...]}
                                curve point i has control i / (P - 1); its levels turn
                                into thresholds through entropy_quantiles
                                (device/policy/exits.py). Level 0 means the exit never
                                answers, and the engine does not run its stages unless a
                                later exit needs them. floor: below it calibration shows no
                                accuracy gain, so the router never goes lower.
  eval_set                      {"file": "eval.npz", "count"} or null; eval.npz holds
                                "images" (N, H, W, 3) uint8 RGB and "labels" (N,) int64.

The "statistics" output of an answering stage is float32 (1, 3): [softmax entropy in nats,
top-1 probability, top-1 class index] of its logits, computed inside the file so that the
board's exit decision and answer read three numbers. The concat method's stages: trunk (image
-> features), subnet_k (trunk.features and subnet_{k-1}.features -> features [f_1..f_k],
logits, statistics), exit k = trunk + subnet_1..k; a width-switching method has one stage per
exit, fed by the image.
"""
from device.errors import UserError

FORMAT_NAME = "dynedge-bundle"
FORMAT_VERSION = 5  # 2: the router curve carries per-subnet exit levels; 3: subnet files output exit
# statistics; 4: subnet k outputs [f_1..f_k], not f_k; 5: stages and exits, for every method
MANIFEST_NAME = "manifest.json"
IMAGE = "image"  # the source of a stage input fed with the frame

REQUIRED_KEYS = (
    "format", "format_version", "method", "arch", "dataset", "labels", "input", "stages", "exits",
    "precisions", "files", "router",
)
STAGE_WIRING_KEYS = ("name", "inputs", "outputs")
STAGE_KEYS = STAGE_WIRING_KEYS + ("macs", "params")
LADDER_KEYS = ("index", "stages", "answer")
EXIT_KEYS = LADDER_KEYS + (
    "macs_alone", "macs_incremental", "macs_cumulative", "params", "accuracy", "entropy_quantiles",
)


class ManifestError(UserError, ValueError):
    """A manifest that this runtime cannot trust or does not understand."""


def _lacking(entry: dict, keys: tuple, what: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ManifestError(f"manifest {what + ' ' if what else ''}lacks: {', '.join(missing)}")


def validate_ladder(stages: list, exits: list) -> None:
    """Stages whose inputs come from the image or earlier stages; exits that need only known
    stages, sources first, and answer from one of them with logits and statistics."""
    known = {}
    for stage in stages:
        _lacking(stage, STAGE_WIRING_KEYS, f"stage {stage.get('name', '?')}")
        for feed in stage["inputs"]:
            source = feed.get("from", "")
            if source != IMAGE:
                name, _, output = source.partition(".")
                if output not in known.get(name, ()):
                    raise ManifestError(f"manifest stage {stage['name']}: input {feed.get('name')} comes from "
                                        f"'{source}', which no earlier stage outputs")
        known[stage["name"]] = stage["outputs"]
    if not exits:
        raise ManifestError("manifest has no exits")
    for position, exit_ in enumerate(exits, start=1):
        _lacking(exit_, LADDER_KEYS, f"exit {exit_.get('index', '?')}")
        if exit_["index"] != position:
            raise ManifestError(f"manifest exits are not in ladder order: entry {position} has index {exit_['index']}")
        seen = set()
        for name in exit_["stages"]:
            if name not in known:
                raise ManifestError(f"manifest exit {position} needs stage '{name}', which is not listed")
            sources = {feed["from"].partition(".")[0] for feed in next(s for s in stages if s["name"] == name)["inputs"]}
            if not sources - {IMAGE} <= seen:
                raise ManifestError(f"manifest exit {position}: stage '{name}' needs "
                                    f"{', '.join(sorted(sources - {IMAGE} - seen))} before it")
            seen.add(name)
        if exit_["answer"] not in seen or not {"logits", "statistics"} <= set(known[exit_["answer"]]):
            raise ManifestError(f"manifest exit {position}: answer stage '{exit_['answer']}' is not one of its "
                                f"stages with logits and statistics outputs")


def check_growing_cost(exits: list) -> None:
    """Each exit must cost more MACs alone than the one below it: a ladder step that costs less
    would never be worth escalating to."""
    for below, exit_ in zip(exits, exits[1:]):
        if exit_["macs_alone"] <= below["macs_alone"]:
            raise ManifestError(f"exit {exit_['index']} costs {exit_['macs_alone']:,} MACs, not more than exit "
                                f"{below['index']}'s {below['macs_alone']:,}; the exit ladder must grow in cost")


def validate_manifest(manifest: dict) -> dict:
    """Check format, version and required fields; return the manifest or raise ManifestError."""
    if manifest.get("format") != FORMAT_NAME:
        raise ManifestError(f"not a dynedge bundle manifest (format={manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        older = isinstance(version, int) and version < FORMAT_VERSION
        raise ManifestError(
            f"bundle format version {version!r} is not supported by this runtime (expects {FORMAT_VERSION}); "
            + ("rebuild the bundle with host/build.py" if older else "update the runtime (device/) to the "
               "one the bundle was built with"))
    _lacking(manifest, REQUIRED_KEYS, "")
    validate_ladder(manifest["stages"], manifest["exits"])
    for stage in manifest["stages"]:
        _lacking(stage, STAGE_KEYS, f"stage {stage['name']}")
    for exit_ in manifest["exits"]:
        _lacking(exit_, EXIT_KEYS, f"exit {exit_['index']}")
    check_growing_cost(manifest["exits"])
    curve = manifest["router"].get("curve")
    if not curve or any("levels" not in point for point in curve):
        raise ManifestError("manifest router curve is missing or lacks per-exit levels; rebuild the bundle")
    if "fp32" not in manifest["precisions"]:
        raise ManifestError("manifest has no fp32 precision entry")
    names = [s["name"] for s in manifest["stages"]]
    for precision, entry in manifest["precisions"].items():
        missing = [n for n in names if n not in entry.get("files", {})]
        if missing:
            raise ManifestError(f"manifest precision {precision} has no file for stage(s) {', '.join(missing)}")
    return manifest
