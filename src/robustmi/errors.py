"""Errors a user can fix. The CLI prints ``str(error)`` on one line and exits with code 2.

Anything else escaping to the CLI is a bug in robustmi and shows a traceback.
"""


class RobustMIError(Exception):
    """Base class: the message names the problem and the fix, in one line."""


class DataError(RobustMIError):
    """A dataset is missing, corrupt or malformed."""


class ConfigError(RobustMIError):
    """A configuration value, key or option is invalid."""


class CheckpointError(RobustMIError):
    """A checkpoint or run folder cannot be read or written safely."""


class ModelError(RobustMIError):
    """An unknown model, layer or an incompatible model/input combination."""


class AttackError(RobustMIError):
    """Invalid attack settings or an attack that cannot run (e.g. missing optional dependency)."""
