"""Load product files: one file -> ProductSpec, a folder -> specs plus located errors.

Every error is a :class:`SpecIssue` (``path:line:col: field.path: message``); a file collects
all of its issues, and a bad file never stops the others from loading.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dag_factory.spec.errors import SpecError, SpecIssue, format_field_path
from dag_factory.spec.models import (
    PATTERN_MEANING, PRODUCT_NAME, FieldError, ProductInput, ProductSpec,
)
from dag_factory.spec.soda_schema import soda_contract_errors
from dag_factory.spec.yaml_marks import MarkedDocument, load_marked

SPEC_SUFFIXES = (".yaml", ".yml")
MAX_SPEC_BYTES = 1_000_000


@dataclass
class LoadedProduct:
    """A valid product: its spec, its file and the YAML marks (for cross-file errors)."""

    spec: ProductSpec
    path: Path
    document: MarkedDocument


@dataclass
class FolderResult:
    """What a products folder holds.

    Attributes:
        products: product name -> :class:`LoadedProduct`, valid products only, sorted by name.
        errors: file path -> :class:`SpecError` for each invalid file.
        claimed_names: file path -> the product name an invalid file declares, when readable.
    """

    products: dict[str, LoadedProduct] = field(default_factory=dict)
    errors: dict[Path, SpecError] = field(default_factory=dict)
    claimed_names: dict[Path, str] = field(default_factory=dict)


def spec_files(folder: Path) -> list[Path]:
    """The product files of ``folder`` (``*.yaml``/``*.yml``, not hidden, not recursive), sorted."""
    return sorted(
        p for p in Path(folder).iterdir()
        if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def load_product_file(path: Path | str, products_folder: Path | None = None) -> LoadedProduct:
    """Read and validate one product file (per-file checks only).

    Args:
        path: the YAML file.
        products_folder: folder that ``transform.file`` is relative to (default: the file's folder).

    Returns:
        the :class:`LoadedProduct`.

    Raises:
        SpecError: with every issue found (syntax, unknown keys, types, Soda blocks, files).
    """
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([SpecIssue(name, 0, 0, "", f"cannot read the file: {exc.strerror}")])
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError([SpecIssue(name, 1, 1, "", f"file is over {MAX_SPEC_BYTES} bytes")])
    try:
        document = load_marked(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(name, 1, 1, "", f"expected UTF-8 text: {exc.reason}")])
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_issue(name, exc)])
    return _validate_document(path, document, products_folder or path.parent)


def _yaml_issue(name: str, exc: yaml.YAMLError) -> SpecIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return SpecIssue(name, line, column, "", message)


def _validate_document(path: Path, document: MarkedDocument, folder: Path) -> LoadedProduct:
    name = str(path)
    data = document.data
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError([SpecIssue(name, 1, 1, "", f"expected a mapping of product fields, got {kind}")])
    issues = [_issue(name, document, p, "duplicate key; the last value would silently win")
              for p in document.duplicate_keys]
    spec = None
    try:
        spec = ProductSpec.model_validate(data)
    except ValidationError as exc:
        issues += _pydantic_issues(name, document, exc.errors())
    output = data.get("output")
    if isinstance(output, dict) and isinstance(output.get("columns"), list):
        for sub_path, message in soda_contract_errors(output["columns"], output.get("checks")):
            issues.append(_issue(name, document, ("output", *sub_path), message))
    if spec is not None and spec.transform.file is not None:
        sql_file = (folder / spec.transform.file).resolve()
        if not sql_file.is_file():
            issues.append(_issue(name, document, ("transform", "file"),
                                 f"transform file not found: {sql_file}"))
    if issues:
        raise SpecError(issues)
    return LoadedProduct(spec=spec, path=path, document=document)


def _issue(name: str, document: MarkedDocument, path: tuple, message: str) -> SpecIssue:
    line, column = document.locate(path)
    return SpecIssue(name, line, column, format_field_path(path), message)


def _pydantic_issues(name: str, document: MarkedDocument, errors: list[dict]) -> list[SpecIssue]:
    """Issues of pydantic's errors, less the type errors of union members that did not match
    when another member got further into the value (``schedule: [Bad-Name]`` is one issue, at
    ``schedule[0]``, not also "schedule: not a string")."""
    located = [(_error_path(document, err), err) for err in errors]
    deeper = {path[:n] for path, _ in located for n in range(len(path))}
    return [_pydantic_issue(name, document, path, err) for path, err in located
            if not (err["type"].endswith("_type") and path in deeper)]


def _error_path(document: MarkedDocument, error: dict) -> tuple:
    """The data path of a pydantic error, extended by a :class:`FieldError`'s own path."""
    loc = error["loc"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        loc = (*loc, *cause.path)
    return _data_path(document.data, loc, error["type"] == "missing")


def _pydantic_issue(name: str, document: MarkedDocument, path: tuple, error: dict) -> SpecIssue:
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; `dataproducts schema` lists the allowed keys)"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "string_pattern_mismatch":
        message = "expected " + PATTERN_MEANING.get(error["ctx"]["pattern"], message)
    elif error["type"] == "string_type" and isinstance(error["input"], (bool, int, float, dt.date)):
        value = error["input"]
        message = f"expected a string, got {type(value).__name__} {value}: quote the value in YAML"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return _issue(name, document, path, message)


def _data_path(data: Any, loc: tuple, missing: bool) -> tuple:
    """Map a pydantic error location onto the YAML data.

    Union tags and validator names in ``loc`` are not keys of the data and are dropped; for a
    ``missing`` error the absent key is kept at the end so the message names it.
    """
    path: list = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            path.append(part)
    if missing and loc and loc[-1] not in path[-1:]:
        path.append(loc[-1])
    return tuple(path)


def load_products(folder: Path | str) -> FolderResult:
    """Load every product file of ``folder`` and run the cross-file checks.

    Cross-file checks: duplicate product names (the first file by name keeps the name),
    ``type: product`` inputs and list schedules naming no product, dependency cycles.

    Returns:
        a :class:`FolderResult`; never raises for bad files.
    """
    folder = Path(folder)
    result = FolderResult()
    loaded: list[LoadedProduct] = []
    for path in spec_files(folder):
        try:
            loaded.append(load_product_file(path, folder))
        except SpecError as exc:
            result.errors[path] = exc
            claimed = _claimed_name(path)
            if claimed:
                result.claimed_names[path] = claimed
    known_names = set(result.claimed_names.values())
    for product in loaded:
        owner = result.products.get(product.spec.name)
        if owner is not None:
            result.errors[product.path] = SpecError([_issue(
                str(product.path), product.document, ("name",),
                f"product name {product.spec.name!r} is already used by {owner.path}")])
            continue
        result.products[product.spec.name] = product
    known_names |= set(result.products)
    _check_references(result, known_names)
    _check_cycles(result)
    result.products = dict(sorted(result.products.items()))
    return result


def _claimed_name(path: Path) -> str | None:
    try:
        data = load_marked(path.read_text(encoding="utf-8")).data
    except (OSError, ValueError, yaml.YAMLError):  # UnicodeDecodeError is a ValueError
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and re.match(PRODUCT_NAME, name) else None


def _reference_paths(spec: ProductSpec) -> list[tuple[tuple, str]]:
    refs = [(("inputs", i, "product"), inp.product)
            for i, inp in enumerate(spec.inputs) if isinstance(inp, ProductInput)]
    if isinstance(spec.schedule, list):
        refs += [(("schedule", i), name) for i, name in enumerate(spec.schedule)]
    return refs


def _check_references(result: FolderResult, known_names: set[str]) -> None:
    for name, product in list(result.products.items()):
        issues = []
        for path, ref in _reference_paths(product.spec):
            if ref == name:
                issues.append(_issue(str(product.path), product.document, path,
                                     "a product cannot read or wait for itself"))
            elif ref not in known_names:
                issues.append(_issue(str(product.path), product.document, path,
                                     f"no product named {ref!r} in the products folder"))
        if issues:
            result.errors[product.path] = SpecError(issues)
            del result.products[name]


def _check_cycles(result: FolderResult) -> None:
    graph = {n: [u for u in p.spec.upstream_products() if u in result.products]
             for n, p in result.products.items()}
    in_cycle: dict[str, list[str]] = {}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for upstream in graph[node]:
            if state.get(upstream) == 1:
                cycle = stack[stack.index(upstream):] + [upstream]
                for member in cycle[:-1]:
                    in_cycle.setdefault(member, cycle)
            elif upstream not in state:
                visit(upstream)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    for name, cycle in sorted(in_cycle.items()):
        product = result.products.pop(name)
        result.errors[product.path] = SpecError([_issue(
            str(product.path), product.document, ("inputs",),
            "dependency cycle: " + " -> ".join(cycle))])
