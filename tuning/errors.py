"""Exceptions the commands report without a traceback: user mistakes (status 2) and an export that cannot
be made (status 1)."""


class StudyError(Exception):
    """A mistake on the user's side (bad study file, missing or unusable data), not a bug."""


class StudyConfigError(StudyError):
    """The study file (or the dict / overrides given instead) is invalid."""


class DataError(StudyError):
    """The data set cannot be loaded or split as the study asks."""


class ExportFailed(Exception):
    """The study ran, but no model it could export predicts finite values (every candidate diverged)."""
