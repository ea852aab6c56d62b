"""The internals of Optuna and MLflow the study relies on, one module per library, each use with its reason
(tests/test_compat.py fails when the library changes one). Everything else uses their public APIs."""
