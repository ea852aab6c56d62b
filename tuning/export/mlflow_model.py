"""The exported pipeline as an MLflow model on the study's parent run: raw-row signature and input example, the
pinned requirements, and a user's factory shipped as the model's ``code_paths`` (so ``mlflow.pyfunc`` loads it
in a process that never imported the factory)."""

from __future__ import annotations

import tempfile
from importlib import metadata
from typing import Any

from tuning.compat.mlflow import global_tracking_uri
from tuning.export.shipped_code import code_paths, manifest, ship_code, verify_shipped_code
from tuning.tracking.model_schema import column_schema, feature_types, raw_example

__all__ = ["load_verified", "log_model", "model_requirements"]


def model_requirements() -> list[str]:
    """Pinned packages the exported pipeline needs to load (this project and its model stack)."""
    names = ("tensorflow", "keras", "scikit-learn", "scikeras", "numpy", "cloudpickle")
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def log_model(tracker: Any, pipeline: Any, X_example: Any, registered_model_name: str | None) -> None:
    """The whole fitted pipeline as an MLflow model on ``tracker``'s parent run, optionally registered.

    Its signature lists the original feature columns by name: numbers (and booleans) as ``Any``, so
    integer columns, and integer columns that pandas read as float because of a missing value, both
    pass MLflow's schema check (the pipeline casts them); text as ``string``; dates as ``datetime``.
    The input example is raw rows. A user's model factory travels as the model's ``code_paths`` (laid out
    as an export's ``code/``, :mod:`tuning.export.shipped_code`): MLflow puts them on ``sys.path`` when it
    loads the model, so it loads in a process that never imported the factory.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature

    example = raw_example(pipeline, X_example)
    inputs = column_schema(example)
    outputs = infer_signature(example, pipeline.predict(example)).outputs
    # mlflow.sklearn.log_model needs the global tracking URI and an active run; both are put back as
    # they were (unset stays unset, so a later study without a URI still gets MLflow's default).
    with tempfile.TemporaryDirectory(prefix="tuning-code-") as code_root, global_tracking_uri(tracker.tracking_uri):
        ship_code(pipeline, code_root)
        with mlflow.start_run(run_id=tracker.parent_run_id):
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=ModelSignature(inputs=inputs, outputs=outputs),
                input_example=example,
                registered_model_name=registered_model_name,
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),  # inferring them costs ~20 s per study
                # the shipped files' sha256, as code.json records them (checked by load_verified)
                metadata={"feature_types": feature_types(X_example), "shipped_code": manifest(code_root)},
                code_paths=code_paths(code_root) or None,
            )
            mlflow.set_tag("model.uri", info.model_uri)


def load_verified(uri: str) -> Any:
    """``mlflow.sklearn.load_model(uri)``, the model's shipped code first checked against the sha256 its
    metadata records (``shipped_code``; a changed file raises
    :class:`~tuning.export.shipped_code.ShippedCodeError`). A model logged before the hashes were recorded
    loads unchecked, as MLflow's own loaders load every model."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import Model

    from tuning.export.old_paths import old_module_paths

    local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    verify_shipped_code(local, (Model.load(local).metadata or {}).get("shipped_code") or [])
    with old_module_paths():  # a model logged before the estimators moved into folders
        return mlflow.sklearn.load_model(local)
