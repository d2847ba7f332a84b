"""User-facing errors: every message names the file/key and says what to do."""


class TiseError(Exception):
    """Base class for errors that are the user's to fix (bad input, missing weights, bad config)."""


class ConfigError(TiseError):
    pass


class DataError(TiseError):
    pass


class WeightsNotFoundError(TiseError):
    pass


class StorageError(TiseError):
    """A folder cannot take the files written to it (disk full, quota, read-only, permission): the message
    names the folder and the setting that moves it (:mod:`tise_bench.fsutil`)."""
