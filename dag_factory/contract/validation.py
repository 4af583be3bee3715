"""Check exported documents against the official Bitol JSON Schemas.

The schemas are not shipped with the package: pass the folder that holds
``odcs-json-schema-v3.1.0.json`` and ``odps-json-schema-v1.0.0.json`` as published by
bitol-io (the repository's tests read them from ``../shared/bitol-schemas``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

SCHEMA_FILES = {"odcs": "odcs-json-schema-v3.1.0.json", "odps": "odps-json-schema-v1.0.0.json"}


class ExportInvalid(ValueError):
    """An exported document breaks its standard's JSON Schema; ``errors`` lists
    ``"<path>: <message>"`` strings (path ``$`` is the document root)."""

    def __init__(self, standard: str, errors: list[str]):
        super().__init__(f"the {standard.upper()} export does not match the official JSON "
                         f"Schema ({len(errors)} error(s)):\n  " + "\n  ".join(errors))
        self.standard = standard
        self.errors = errors


@functools.lru_cache(maxsize=8)
def _validator(schema_file: Path):
    import jsonschema

    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_file(standard: str, schema_dir: str | Path) -> Path:
    """The official schema file of ``standard`` (``odcs`` or ``odps``) in ``schema_dir``.

    Raises:
        ValueError: an unknown standard; FileNotFoundError: the file is not there.
    """
    if standard not in SCHEMA_FILES:
        raise ValueError(f"expected a standard among {', '.join(SCHEMA_FILES)}, got {standard!r}")
    path = Path(schema_dir) / SCHEMA_FILES[standard]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {standard.upper()} JSON Schema there (expected the "
                                f"official {SCHEMA_FILES[standard]} from bitol-io)")
    return path


def schema_errors(document: dict, standard: str, schema_dir: str | Path) -> list[str]:
    """Every way ``document`` breaks the official JSON Schema of ``standard`` (Draft 2019-09,
    formats checked where jsonschema can), as ``"<path>: <message>"``; empty when valid.

    Raises:
        ValueError, FileNotFoundError: see :func:`schema_file`.
    """
    validator = _validator(schema_file(standard, schema_dir).resolve())
    errors = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        errors.append(f"{path}: {error.message}")
    return errors


def check_document(document: dict, standard: str, schema_dir: str | Path) -> None:
    """Raise :class:`ExportInvalid` unless ``document`` matches its official JSON Schema."""
    errors = schema_errors(document, standard, schema_dir)
    if errors:
        raise ExportInvalid(standard, errors)
