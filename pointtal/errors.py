"""The errors: the one exception type for bad user input (the CLI prints it as a single line) and the others.
The limits of sane input live in `limits`, JSON parsing in `atomic`."""


class InputError(ValueError):
    """Bad user input: the message names the file, record and value, and what to do."""


class TrainingDiverged(InputError, FloatingPointError):
    """The loss or the weights became NaN/inf (too high a learning rate, broken features): one line, not a
    traceback; the run's last checkpoint holds finite weights."""


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (json.loads would silently keep the last one)."""
