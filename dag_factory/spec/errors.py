"""Spec errors located as ``path:line:col: field.path: message``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one product file.

    Attributes:
        file: path of the YAML file as given to the loader.
        line: 1-based line of the offending node (0 when unknown).
        column: 1-based column of the offending node (0 when unknown).
        field: dotted field path such as ``inputs[0].path`` ("" for the whole file).
        message: what was expected, in plain words.
    """

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}:{self.column}: {field}{self.message}"


class SpecError(Exception):
    """Raised when a product file is invalid; carries every issue found, not just the first.

    Attributes:
        issues: the list of :class:`SpecIssue`, in file order.
    """

    def __init__(self, issues: list[SpecIssue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.field))
        super().__init__("\n".join(str(i) for i in self.issues))


def format_field_path(path: tuple) -> str:
    """Render a data path such as ``("inputs", 0, "path")`` as ``inputs[0].path``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
