"""A bundle's exit ladder as the engine reads it: its stages (model files and how they are fed)
and its exits (the stages each needs and the one that answers), for one precision."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from device.bundle.manifest import IMAGE, validate_ladder


class StageSpec(NamedTuple):
    name: str
    path: Path
    inputs: tuple     # (signature input name, source): source IMAGE or (stage name, signature output name)
    outputs: dict     # output name ("features", "logits", "statistics", ...) -> signature output name


class ExitSpec(NamedTuple):
    stages: tuple     # stage names, sources first
    answer: str       # the stage whose "logits" and "statistics" outputs answer this exit


class Ladder(NamedTuple):
    stages: tuple
    exits: tuple
    num_classes: int | None   # None: take it from exit 1's logits


def ladder_from(stages: list, exits: list, files: dict, model_dir: Path, num_classes: int | None) -> Ladder:
    """The ladder of manifest-style `stages` and `exits` entries (device/bundle/manifest.py) over
    `files` ({stage name: file name in model_dir}); validated as a manifest's would be."""
    validate_ladder(stages, exits)
    outputs = {s["name"]: dict(s["outputs"]) for s in stages}

    def source(text: str):
        if text == IMAGE:
            return IMAGE
        stage, _, output = text.partition(".")
        return stage, outputs[stage][output]
    specs = tuple(StageSpec(s["name"], Path(model_dir) / files[s["name"]],
                            tuple((feed["name"], source(feed["from"])) for feed in s["inputs"]), outputs[s["name"]])
                  for s in stages)
    return Ladder(specs, tuple(ExitSpec(tuple(e["stages"]), e["answer"]) for e in exits), num_classes)


def free_to_try(exit_stages: list) -> list:
    """Per exit (lists of stage names, ladder order), whether trying it costs nothing extra: the
    top exit needs all of its stages. The engine still tries such an exit when it never answers
    (its fallback for the deadline guard) and passes the others by; calibration prices frames the
    same way."""
    top = set(exit_stages[-1])
    return [set(stages) <= top for stages in exit_stages]
