"""The limits of sane input, and the refusal of work or output beyond them before any of it is done."""

from pointtal.errors import InputError

MAX_DURATION_SEC = 1e9  # 31 years: a longer video is a corrupt file (keeps snippet counts finite integers)
MAX_FPS = 1e6  # frames per second


def refuse_estimate(estimate: float, limit: float, what: str, remedy: str, unit: str = "bytes") -> None:
    """Refuse, before doing any of it, work or output whose estimated size is beyond `limit`.

    Used where an extreme option (a feature width, a window, a crop length) would fill the disk or memory or
    run for hours with no output: one line saying what was estimated, the limit, and how to change or force it.
    """
    if estimate > limit:
        raise InputError(f"{what} would need about {amount(estimate, unit)}, more than {amount(limit, unit)}; {remedy}")


def amount(value: float, unit: str = "bytes") -> str:
    """'1.2 GB' for bytes (decimal units), '3.4e+09 windows' for counts."""
    if unit != "bytes":
        return f"{value:.3g} {unit}"
    for scale, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if value >= scale:
            return f"{value / scale:.1f} {name}"
    return f"{value:.0f} bytes"
