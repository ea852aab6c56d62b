"""The commands (``python -m tuning.run``, ``tuning.predict``, ``tuning.lr_find``) and the ``--dry-run``
plan. Each command is a thin shell around one library call."""
