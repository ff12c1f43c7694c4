"""User-facing errors: one clear line naming the file, line or field and what was expected."""

from __future__ import annotations

from pathlib import Path


class MsdError(Exception):
    """Base class for errors caused by user input. The CLI prints `error: <message>` and exits 2."""


class InputError(MsdError):
    """Bad input file or value.

    Args:
        message: what was wrong and what was expected.
        path: the file concerned, if any.
        line: 1-based line number in that file, if known.
        field: the column, key or field name, if known.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            where += f"field '{field}': "
        super().__init__(where + message)


class ConfigError(InputError):
    """Bad experiment file or option. For a `.toml` file and a `section.key` field without a given
    line, the line is looked up in the file (tomllib keeps no positions)."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        if line is None and field and path is not None and str(path).endswith(".toml"):
            from msdiversity.config import toml_line_of

            line = toml_line_of(path, field)
        super().__init__(message, path=path, line=line, field=field)


class ResultsLocked(MsdError):
    """Another process is writing the same results folder."""


class TrainingDiverged(MsdError):
    """A member's losses or parameters became non-finite: training stopped."""


class ModelError(MsdError):
    """Unknown model name or a model that cannot be loaded."""
