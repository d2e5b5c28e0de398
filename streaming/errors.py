"""Errors raised by the numerical core.

    StreamingError (ValueError)
    ├── InvalidConfigError   a bank configuration that cannot be built (bad latent sizes, ...)
    └── InvalidBatchError    a batch that cannot be learned or projected (shape, NaN/Inf, ...)

Every error leaves the bank exactly as it was: validation happens before any state changes.
"""


class StreamingError(ValueError):
    """Base class of every error the numerical core raises on bad input."""


class InvalidConfigError(StreamingError):
    """The bank configuration is invalid; the message names the field and what was expected."""


class InvalidBatchError(StreamingError):
    """The batch is invalid; the message says what was wrong and what was expected."""
