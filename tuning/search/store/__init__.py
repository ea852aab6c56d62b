"""The study store: a study's state between runs and between workers (trials, attributes, budget, export
vote), the Optuna storage it lives in, and the samplers and seeded candidates the stored study draws from."""
