"""Errors that carry a message meant for the user: the CLI prints them without a traceback."""


class GanforgeError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class DataNotFoundError(GanforgeError):
    """A dataset could not be found in any of the places ganforge looks."""


class ConfigError(GanforgeError):
    """A setting that cannot work (bad shape, bad number, conflicting run directory...)."""


class CheckpointError(GanforgeError):
    """A checkpoint is missing, truncated or corrupt."""
