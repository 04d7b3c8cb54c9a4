"""Config validation errors: every problem names the YAML path it is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config. ``path`` is dotted YAML (``services.clip.models.default.runtime``);
    an empty path means the whole document."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A config could not be read or is invalid. ``str()`` lists every issue, one per line."""

    def __init__(self, issues: Iterable[ConfigIssue], *, source: str | None = None) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        self.source = source
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)

    @property
    def paths(self) -> list[str]:
        return [issue.path for issue in self.issues]
