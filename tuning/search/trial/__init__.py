"""One trial: the runner (folds, epochs, pruning hook, outcome), the estimator it builds, the per-epoch
scoring and objective metrics, the kept models and the model preflight."""
