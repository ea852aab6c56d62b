"""Stage 1, the study file: its schema, the YAML reader, search-space entries and command-line overrides.

``load_study(path)`` (in :mod:`tuning.config.schema`) reads, validates and returns one ``StudyConfig``.
"""
