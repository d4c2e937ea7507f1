"""The one exception type for bad user input; the CLI prints it as a single line."""


class InputError(ValueError):
    """Bad user input: the message names the file, record and value, and what to do."""
