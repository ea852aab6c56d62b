"""Stage 5, the export: the fitted pipeline and its files, the ensemble of the best trials, the stored
result of a finished study. ``load_model(dir)`` loads an export and predicts on raw rows; ``save_model(fitted, dir)`` exports a model
fitted outside a study the same way."""

from tuning.export.files import load_model, save_model

__all__ = ["load_model", "save_model"]
