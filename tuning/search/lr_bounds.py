"""The study's optional first step, ``search.lr_range_test: true``: ``space.learning_rate`` becomes the
bounds a learning-rate range test suggests (:mod:`tuning.search.lr_range`), on a log scale.

The test runs once per study: its result goes to ``lr_range.json`` (and ``lr_range.png``) in the export
directory, with the ``learning_rate`` range it replaced. While that range is still the study file's, a
re-run, a resumed study and every ``--workers`` helper read the bounds back instead of testing again, so
they search the same space (the study store refuses a changed one). ``--fresh`` tests again. A
``python -m tuning.lr_find`` run writing the same file is reused the same way.

Reading the stored bounds needs no TensorFlow (commands check a study before loading it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.config.schema import FloatParam, StudyConfig

if TYPE_CHECKING:
    from tuning.data.sources import DatasetSplit
    from tuning.search.lr_range import LRRangeResult

RESULT_FILE, PICTURE_FILE = "lr_range.json", "lr_range.png"
RANGE_OF = "range_of"  # the learning_rate entry the bounds replace (JSON of the space entry)


def wanted(config: StudyConfig) -> bool:
    """Whether the study asks for the step and has a continuous float range for ``learning_rate``."""
    spec = config.space.get("learning_rate")
    return bool(config.search.lr_range_test) and isinstance(spec, FloatParam) and spec.step is None


def bounds_spec(bounds: tuple[float, float] | list[float]) -> FloatParam:
    """The ``learning_rate`` space entry of suggested bounds (log scale, positive)."""
    low, high = (float(b) for b in bounds)
    if not 0 < low <= high:
        raise ValueError(f"learning-rate bounds must be positive and ordered, got {low}, {high}")
    return FloatParam(type="float", low=low, high=high, log=True)


def with_learning_rate(config: StudyConfig, spec: FloatParam) -> StudyConfig:
    """A copy of ``config`` whose ``space.learning_rate`` is ``spec``."""
    return config.model_copy(update={"space": {**config.space, "learning_rate": spec}})


def spec_json(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json")


def read_stored(config: StudyConfig) -> dict[str, Any] | None:
    """The stored test result for this study's ``learning_rate`` range, or None (none, unreadable, or made
    for another range). A config whose range already is the stored bounds (a helper's) also matches."""
    path = config.export_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text())
        stored_bounds = spec_json(bounds_spec(data["suggested_bounds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    current = spec_json(config.space["learning_rate"])
    return data if current in (data.get(RANGE_OF), stored_bounds) else None


def with_stored_bounds(config: StudyConfig, fresh: bool = False) -> StudyConfig:
    """``config`` with the stored bounds applied, when the step is wanted and they exist (never ``fresh``)."""
    if fresh or not wanted(config):
        return config
    stored = read_stored(config)
    return config if stored is None else with_learning_rate(config, bounds_spec(stored["suggested_bounds"]))


@dataclass
class LRStep:
    """What the step decided: the config to run, notes to print and, when the test ran here, its result
    (to save with :func:`save` once the study store accepted the space)."""

    config: StudyConfig
    notes: list[str] = field(default_factory=list)
    result: LRRangeResult | None = None
    range_of: dict[str, Any] | None = None


def resolve(config: StudyConfig, split: DatasetSplit, fresh: bool = False) -> LRStep:
    """Apply the stored bounds, or run the range test on ``split`` and apply its suggestion."""
    if not wanted(config):
        return LRStep(config)
    stored = None if fresh else read_stored(config)
    if stored is not None:
        spec = bounds_spec(stored["suggested_bounds"])
        note = (f"space.learning_rate: {spec.low:g} .. {spec.high:g} (log), from the learning-rate range test "
                f"stored in {config.export_dir / RESULT_FILE}")
        return LRStep(with_learning_rate(config, spec), [note])
    from tuning.search.lr_range import lr_range_test

    result = lr_range_test(config, split)
    spec = bounds_spec(result.suggested_bounds)
    note = (f"learning-rate range test: loss lowest at {result.best_lr:.3g}, suggested {result.suggested_lr:.3g}; "
            f"space.learning_rate set to {spec.low:g} .. {spec.high:g} (log)")
    return LRStep(with_learning_rate(config, spec), [note], result, spec_json(config.space["learning_rate"]))


def write(result: LRRangeResult, directory: str | Path, range_of: dict[str, Any] | None = None) -> list[Path]:
    """``lr_range.json`` (the curve, the suggestion and the range it replaces) and ``lr_range.png``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / RESULT_FILE
    json_path.write_text(json.dumps({RANGE_OF: range_of, **result.to_dict()}, indent=2) + "\n")
    return [json_path, result.plot(directory / PICTURE_FILE)]


def save(step: LRStep) -> list[Path]:
    """Store a test run by :func:`resolve` in the study's export directory; the files written ([] if none)."""
    if step.result is None:
        return []
    return write(step.result, step.config.export_dir, step.range_of)
