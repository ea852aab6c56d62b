"""Our MLP: ``build_model`` and the ``KerasMLPRegressor`` / ``KerasMLPClassifier`` estimators."""
