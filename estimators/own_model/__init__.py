"""The user's own Keras model: the ``KerasModelRegressor`` / ``KerasModelClassifier`` estimators, the
factory they call, and the KerasTuner-style ``hp`` object a hypermodel factory draws from."""
