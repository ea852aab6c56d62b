"""Stage 3, the search: the trial runner, objective metrics, the space, the learning-rate range test and
the backends (a study store and a trial scheduler each)."""
