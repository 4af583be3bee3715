"""Validate ``output.columns`` / ``output.checks`` with Soda Core v4's own contract JSON Schema.

Two implementations of JSON Schema draft 2020-12 read the same schema. ``jsonschema-rs``
(compiled; ~0.003 ms per product) decides a contract made of plain JSON data (dict with
string keys, list, str, int, float, bool, None) that it finds valid; every other contract
(invalid for it, or holding values JSON has no type for, such as dates or the tuples of
``!!pairs``) goes to ``jsonschema`` (pure Python; ~1 ms per product, which was half of a
product file's load), whose verdict and error messages are the ones reported. On plain JSON
both implement the same specification; ``tests/test_soda_schema.py`` checks that they agree
on mangled demo contracts.
"""

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


@functools.lru_cache(maxsize=1)
def _fast_validator():
    import jsonschema_rs

    return jsonschema_rs.validator_for(soda_contract_schema())


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON data made of exactly dict (str keys), list, str, int, float,
    bool and None, nested at most 100 levels: the values both validators read identically."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if depth > 100:
        return False
    if kind is list:
        return all(_is_plain_json(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_plain_json(item, depth + 1)
                   for key, item in value.items())
    return False


def _fast_accepts(contract: dict) -> bool:
    """True when ``jsonschema-rs`` accepts ``contract`` read as plain JSON (see the module doc)."""
    return _is_plain_json(contract) and _fast_validator().is_valid(contract)


def soda_contract_errors(columns: Any, checks: Any) -> list[tuple[tuple, str]]:
    """Validate the Soda parts of a spec's ``output`` block.

    Args:
        columns: the raw ``output.columns`` list from the YAML.
        checks: the raw ``output.checks`` list, or None.

    Returns:
        a list of (data path relative to ``output``, message); empty when valid.
    """
    contract: dict[str, Any] = {"dataset": "ds/schema/table", "columns": columns}
    if checks is not None:
        contract["checks"] = checks
    if _fast_accepts(contract):
        return []
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
