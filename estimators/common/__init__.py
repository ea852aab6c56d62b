"""The pieces both estimators share: the table of hyperparameters, callbacks, the validation pass,
inference, target encoders, the data pipeline, seeding, init parameters, embeddings and ensembles."""
