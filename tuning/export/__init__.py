"""Stage 5, the export: the fitted pipeline and its files, the ensemble of the best trials, the stored
result of a finished study. ``load_model(dir)`` loads an export and predicts on raw rows."""

from tuning.export.files import load_model

__all__ = ["load_model"]
