"""Exceptions for user mistakes: the CLI prints their message and exits with status 2, without traceback."""


class StudyError(Exception):
    """A mistake on the user's side (bad study file, missing or unusable data), not a bug."""


class StudyConfigError(StudyError):
    """The study file (or the dict / overrides given instead) is invalid."""


class DataError(StudyError):
    """The data set cannot be loaded or split as the study asks."""
