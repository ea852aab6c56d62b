"""The internals of Keras, TensorFlow and scikeras the estimators rely on, one module per library, each use
with its reason (tests/test_compat.py fails when the library changes one). Everything else uses their public
APIs. Here, not in ``tuning/compat``: the estimators import nothing of ``tuning``."""
