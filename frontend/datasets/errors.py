"""The error a dataset raises when its files are missing or malformed."""
from graphc.errors import GraphcError


class DatasetError(GraphcError, RuntimeError):
    """A dataset's files are missing, truncated or not in the expected format.

    The message names the file, says what was expected, and says how to get the data.
    """
