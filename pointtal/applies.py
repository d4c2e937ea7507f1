"""Config keys that mean something only under a condition: given explicitly where they cannot apply, they are an
error naming the key and why (issue 18 §5: "options that cannot apply are an error, not ignored").

Each method's `Options` lists its own rules in `APPLIES` (keys of the method section); pointtal.config lists the
data / train rules (keys with their section). `pointtal.config.check_applicable` applies both to the keys a
config file or `--set` gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Applies:
    """`key` applies only while `other` has one of `values` (with `excluded`: none of them); `why` says what
    ignores it otherwise."""

    key: str  # the conditional key ("budget"; "data.window_sec" in the config's own table)
    other: str  # the key it depends on, same form ("search"; "method.name" is the method's name)
    values: tuple[Any, ...]  # values of `other` under which `key` applies
    why: str  # e.g. "the exact search has no beam"
    excluded: bool = False  # `values` are those under which `key` does not apply

    def refusal(self, value: Any, other_value: Any) -> str | None:
        """The one-line error for `key=value` given `other=other_value`, or None where it applies."""
        if (other_value in self.values) != self.excluded:
            return None
        return f"{self.key}={shown(value)}: does not apply with {self.other}={shown(other_value)} ({self.why})"

    def qualified(self, section: str) -> Applies:
        """The same rule with `section.` before both keys."""
        return Applies(f"{section}.{self.key}", f"{section}.{self.other}", self.values, self.why, self.excluded)


def shown(value: Any) -> str:
    """A value as one would write it in YAML or --set (true, null, [3, 3], exact)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)
