"""User-facing errors. The CLI prints these as one clear message and exits non-zero (no traceback).

Every error says what was wrong and what to do. Subclass :class:`PadlessError` for a new kind.
"""


class PadlessError(Exception):
    """Base class of every error padless reports to a user."""

    exit_code = 2


class UnknownModelError(PadlessError):
    """A model name that is neither a recipe nor a path to a saved model."""


class UnknownBoardError(PadlessError):
    """A board name with no board file."""


class InputError(PadlessError):
    """Bad user input: empty text, a sequence too long, token ids outside the vocabulary, a bad TSV line."""


class KernelStatusError(InputError):
    """The kernel (C-simulation or board) returned a non-zero status for a call: ``status`` is the code
    (padless_encoder.cpp PADLESS_ERR_*), ``report`` the C-simulation report when there is one."""

    def __init__(self, message: str, status: int = 0, report: dict | None = None):
        super().__init__(message)
        self.status = int(status)
        self.report = report


class ProjectError(PadlessError):
    """A project folder that is missing files, is corrupted or was written by another padless version."""


class ToolMissingError(PadlessError):
    """A vendor or system tool (vitis_hls, vivado, v++, g++) that a flow needs is not on PATH."""

    exit_code = 3


class DataError(PadlessError):
    """A dataset that cannot be fetched from the registries or parsed."""


class DeviceError(PadlessError):
    """A device that is missing or does not answer in time."""


class ClosedError(PadlessError):
    """An Accelerator or backend used after ``close()``: create a new one."""
