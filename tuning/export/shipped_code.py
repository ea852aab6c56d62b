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
import warnings
from pathlib import Path
from typing import Any

__all__ = ["CODE_DIR", "CODE_FILE", "code_paths", "import_shipped_code", "model_factories", "ship_code"]

CODE_DIR = "code"
CODE_FILE = "code.json"


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


def import_shipped_code(export_dir: str | Path) -> list[str]:
    """Import the factory modules an export ships (``code.json``), each under its recorded name unless a
    module of that name is already imported; return the names imported here. A file whose sha256 differs
    from the recorded one is imported with a warning (the model was trained with another version)."""
    from estimators.own_model.factory import import_file

    export_dir = Path(export_dir)
    imported = []
    for entry in _entries(export_dir):
        module = entry["module"]
        if module in sys.modules:
            continue
        path = export_dir / entry["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if entry.get("sha256") and digest != entry["sha256"]:
            warnings.warn(f"{entry['file']} in {export_dir} changed since the export (sha256 {digest[:12]}, "
                          f"exported {entry['sha256'][:12]})", stacklevel=2)
        import_file(path, module)
        imported.append(module)
    return imported


def code_paths(code_root: str | Path) -> list[str]:
    """The entries of ``code_root/code/`` (files and top packages) to give MLflow as ``code_paths``: it copies
    each under the model's ``code/`` folder, which it puts on ``sys.path`` when loading, so the recorded
    module names import as they are. Empty when nothing is shipped."""
    code_dir = Path(code_root) / CODE_DIR
    if not code_dir.is_dir():
        return []
    return [str(p) for p in sorted(code_dir.iterdir()) if p.name != "__pycache__"]
