"""User-facing errors: one line that names the field and the fix."""

from __future__ import annotations


class ExitspaceError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits with code 2.

    The message must name the offending field (or file) and say how to fix it, e.g.
    ``"hardware.cores[0].memories[2].size_bits: must be > 0 (got -8); give the memory size in bits"``.
    """


class ConfigError(ExitspaceError):
    """A configuration, hardware or workload description is invalid."""


class DataError(ExitspaceError):
    """A dataset path, archive or cache is missing or corrupt."""


class CheckpointError(ExitspaceError):
    """A checkpoint or exit table is missing, corrupt or from another model."""


class InfeasibleError(ExitspaceError):
    """Constraints that no design can satisfy."""


class RunDirError(ExitspaceError):
    """A run directory is in use by another process."""
