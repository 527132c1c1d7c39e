"""The one exception type the CLI turns into a single red line and a non-zero exit."""

from __future__ import annotations


class KfwError(Exception):
    """A problem with the user's input or set-up, stated in one line.

    The message names the file, column or value at fault and, where there is one, what to do.
    The CLI prints it without a traceback (unless ``--debug`` / ``KFW_DEBUG=1``).
    """


class DataError(KfwError):
    """A competition file is missing, malformed or inconsistent with its spec."""


class ConfigError(KfwError):
    """A competition spec, parameter override or command option is invalid."""


class FoldError(KfwError):
    """A persisted fold file is missing, inconsistent, or differs from what a run expects."""
