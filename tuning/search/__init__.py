"""Stage 3, the search, in the order its folders import each other: the space (``space.py``); one trial
(``trial/``: runner, estimator maker, metrics, per-epoch scoring, kept models, preflight); the study store
(``store/``: a study's state between runs and workers); the trial schedulers (``schedulers/``: each
backend's, the stacked one, the registry that builds a backend by name); then the learning-rate range test
(``lr_range.py``, ``lr_bounds.py``)."""
