"""Validate ``output.columns`` / ``output.checks`` with Soda Core v4's own contract JSON Schema."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

SODA_SCHEMA_FILE = "soda_data_contract_json_schema_1_0_0.json"


@functools.lru_cache(maxsize=1)
def soda_contract_schema() -> dict:
    """Return Soda's contract JSON Schema, read from the installed ``soda-core`` package.

    Found without importing ``soda_core`` (that import costs ~0.5 s, too much at DAG parse time).

    Raises:
        FileNotFoundError: when soda-core is not installed or no longer ships the file.
    """
    spec = importlib.util.find_spec("soda_core")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("soda-core is not installed; it ships the contract JSON Schema")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "contracts" / SODA_SCHEMA_FILE
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise FileNotFoundError(f"soda-core does not ship contracts/{SODA_SCHEMA_FILE}")


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = soda_contract_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def soda_contract_errors(columns: Any, checks: Any) -> list[tuple[tuple, str]]:
    """Validate the Soda parts of a spec's ``output`` block.

    Args:
        columns: the raw ``output.columns`` list from the YAML.
        checks: the raw ``output.checks`` list, or None.

    Returns:
        a list of (data path relative to ``output``, message); empty when valid.
    """
    import jsonschema

    contract: dict[str, Any] = {"dataset": "ds/schema/table", "columns": columns}
    if checks is not None:
        contract["checks"] = checks
    found = []
    for error in _validator().iter_errors(contract):
        deepest = _deepest(error)
        path = tuple(deepest.absolute_path) or tuple(error.absolute_path)
        found.append((path, f"Soda contract: {_short(deepest.message)}"))
    return found


def _deepest(error):
    """Follow anyOf/oneOf sub-errors to the one that got furthest into the document.

    For a misspelt threshold key inside a ``row_count`` check this names the key, where
    jsonschema's ``best_match`` would report that ``row_count`` matched no check type.
    """
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
    return error


def _short(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."
