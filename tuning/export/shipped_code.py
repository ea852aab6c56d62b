"""The code of a user's model factory, shipped with an export so that it loads in any process.

A pickled user's-model estimator (``KerasModelRegressor`` / ``KerasModelClassifier``) refers to its factory by
module and name (``handson.build_model``), and its Keras model may hold custom layers that Keras can only
rebuild once the module registering them (``keras.saving.register_keras_serializable``) is imported. So an
export of such a model (alone or as an ensemble's members) carries the factory's source file:

- ``code/<module path>.py``: the file, under its module name: ``code/handson.py`` for module ``handson``,
  ``code/package/module.py`` for ``package.module`` (with an empty ``code/package/__init__.py``), so that
  ``code/`` on ``sys.path`` imports it;
- ``code.json``: ``{"modules": [{"module", "function", "file", "sha256"}]}``, one entry per shipped module
  (``file`` relative to the export directory, ``sha256`` of the file as the model was trained with it).

Loading runs that code (and unpickles the pipeline): load only exports you trust. Each file is checked against
its recorded sha256 before it is imported (:func:`verify_shipped_code`), which catches a file changed after the
export, not a forger who rewrites ``code.json`` too.

:func:`import_shipped_code` imports each file under its module name (unless a module of that name is already
imported) before the pipeline is unpickled; MLflow gets the top entries of ``code/`` as ``code_paths``
(:func:`code_paths`), which it copies under the model's own ``code/`` folder and puts on ``sys.path`` when it
loads the model. Only the factory's own file travels: a factory importing other files of its own needs them
installed where the model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["CODE_DIR", "CODE_FILE", "ShippedCodeError", "code_paths", "import_shipped_code", "manifest",
           "model_factories", "ship_code", "verify_shipped_code"]

CODE_DIR = "code"
CODE_FILE = "code.json"


class ShippedCodeError(ValueError):
    """A shipped code file that does not match the sha256 its export recorded: it is not imported."""


def _members(model: Any) -> list[Any]:
    """The estimators a model is made of: an ensemble's members (unfrozen), else the model itself."""
    members = getattr(model, "estimators_", None)
    if members is None:
        return [model]
    return [getattr(member, "estimator", member) for member in members]  # FrozenEstimator wraps a member


def model_factories(pipeline: Any) -> list[Any]:
    """The :class:`~estimators.own_model.factory.Factory` of every user's-model estimator in ``pipeline``'s model (one
    per module, in member order); empty for our own MLPs."""
    from estimators.own_model.estimators import model_factory

    model = pipeline.named_steps["model"] if hasattr(pipeline, "named_steps") else pipeline
    found: dict[str, Any] = {}
    for member in _members(model):
        factory = model_factory(member)
        if factory is not None and factory.module not in found:
            found[factory.module] = factory
    return list(found.values())


def ship_code(pipeline: Any, out_dir: str | Path) -> list[Path]:
    """Write the factories' files under ``out_dir/code/`` and ``out_dir/code.json``; return the paths written
    (none when the model has no user's factory). A factory that no other process could import (defined in
    ``__main__``, or without a source file) is refused."""
    factories = model_factories(pipeline)
    if not factories:
        return []
    out_dir = Path(out_dir)
    code_dir = out_dir / CODE_DIR
    if code_dir.exists():
        shutil.rmtree(code_dir)
    written: list[Path] = []
    entries = []
    for factory in factories:
        if factory.module == "__main__" or factory.source is None or not factory.source.is_file():
            raise ValueError(
                f"the model's factory {factory.label} cannot be exported: it has no module file another process "
                "could import (define it in a .py file and give the estimator 'file.py:function')"
            )
        parts = factory.module.split(".")
        target = code_dir.joinpath(*parts[:-1], parts[-1] + ".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):  # empty packages above a dotted module
            init = code_dir.joinpath(*parts[:depth], "__init__.py")
            if not init.exists():
                init.write_text("")
                written.append(init)
        shutil.copyfile(factory.source, target)
        written.append(target)
        entries.append({
            "module": factory.module,
            "function": factory.name,
            "file": target.relative_to(out_dir).as_posix(),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        })
    manifest = out_dir / CODE_FILE
    manifest.write_text(json.dumps({"modules": entries}, indent=2) + "\n")
    return written + [manifest]


def _entries(export_dir: Path) -> list[dict[str, str]]:
    manifest = export_dir / CODE_FILE
    if not manifest.is_file():
        return []
    return list(json.loads(manifest.read_text()).get("modules", []))


def verify_shipped_code(root: str | Path, entries: list[dict[str, Any]]) -> None:
    """Check each shipped file under ``root`` against the sha256 its entry records, before anything imports
    it; a changed, missing or unrecorded file raises :class:`ShippedCodeError` naming it. (Every export that
    ships code has recorded the sha256 since code was first shipped, so an entry without one was edited.)"""
    root = Path(root)
    for entry in entries:
        name = entry.get("file", "?")
        path = root / name
        if not entry.get("sha256"):
            raise ShippedCodeError(f"{path}: {CODE_FILE} records no sha256 for it, so it cannot be verified; "
                                   "export the model again")
        if not path.is_file():
            raise ShippedCodeError(f"{path}: the shipped code file is missing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise ShippedCodeError(f"{path} changed since the export (sha256 {digest[:12]}, recorded "
                                   f"{entry['sha256'][:12]} in {CODE_FILE}); refusing to import it: export the "
                                   "model again, or restore the file")


def import_shipped_code(export_dir: str | Path) -> list[str]:
    """Import the factory modules an export ships (``code.json``), each under its recorded name unless a
    module of that name is already imported; return the names imported here. Every shipped file is first
    checked against its recorded sha256 (:func:`verify_shipped_code`): a changed one is refused."""
    from estimators.own_model.factory import import_file

    export_dir = Path(export_dir)
    entries = _entries(export_dir)
    verify_shipped_code(export_dir, entries)
    imported = []
    for entry in entries:
        module = entry["module"]
        if module in sys.modules:
            continue
        import_file(export_dir / entry["file"], module)
        imported.append(module)
    return imported


def manifest(code_root: str | Path) -> list[dict[str, Any]]:
    """The entries of ``code_root/code.json`` (empty when nothing is shipped)."""
    return _entries(Path(code_root))


def code_paths(code_root: str | Path) -> list[str]:
    """The entries of ``code_root/code/`` (files and top packages) to give MLflow as ``code_paths``: it copies
    each under the model's ``code/`` folder, which it puts on ``sys.path`` when loading, so the recorded
    module names import as they are. Empty when nothing is shipped."""
    code_dir = Path(code_root) / CODE_DIR
    if not code_dir.is_dir():
        return []
    return [str(p) for p in sorted(code_dir.iterdir()) if p.name != "__pycache__"]
