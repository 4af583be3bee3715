"""Load product files: one file -> ProductSpec, a folder -> specs plus located errors.

Every error is a :class:`SpecIssue` (``path:line:col: field.path: message``); a file collects
all of its issues, and a bad file never stops the others from loading.

A file is first read without YAML marks (:func:`load_plain`) and checked; only a file that is
not plain YAML or that fails a check is read again with marks (:func:`load_marked`) and
checked again to locate its issues. Both reads give the same data and the checks are the same
(:func:`_problems`), so the marks cost nothing for valid files and change no error.
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
    PATTERN_MEANING, PRODUCT_NAME, FieldError, ProductInput, ProductSpec, product_table,
)
from dag_factory.spec.soda_schema import soda_contract_errors
from dag_factory.spec.yaml_marks import MarkedDocument, load_marked, load_plain

SPEC_SUFFIXES = (".yaml", ".yml")
MAX_SPEC_BYTES = 1_000_000


@dataclass
class LoadedProduct:
    """A valid product: its spec, its file and the file's text.

    Attributes:
        spec: the validated spec.
        path: the file.
        text: the file's text as read, for :meth:`marks`.
        document: the YAML marks, None until :meth:`marks` reads them (valid files are read
            without them).
    """

    spec: ProductSpec
    path: Path
    text: str = field(repr=False)
    document: MarkedDocument | None = field(default=None, repr=False)

    def marks(self) -> MarkedDocument:
        """The YAML marks of the file as read, to locate a cross-file error (parsed once)."""
        if self.document is None:
            self.document = load_marked(self.text)
        return self.document


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
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(name, 1, 1, "", f"expected UTF-8 text: {exc.reason}")])
    folder = products_folder or path.parent
    data = load_plain(text)
    if isinstance(data, dict):
        spec, problems = _problems(data, folder)
        if not problems:
            return LoadedProduct(spec=spec, path=path, text=text)
    try:
        document = load_marked(text)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_issue(name, exc)])
    return _validate_document(path, text, document, folder)


def _yaml_issue(name: str, exc: yaml.YAMLError) -> SpecIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return SpecIssue(name, line, column, "", message)


def _validate_document(path: Path, text: str, document: MarkedDocument,
                       folder: Path) -> LoadedProduct:
    name = str(path)
    data = document.data
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError([SpecIssue(name, 1, 1, "", f"expected a mapping of product fields, got {kind}")])
    issues = [_issue(name, document, p, "duplicate key; the last value would silently win")
              for p in document.duplicate_keys]
    spec, problems = _problems(data, folder)
    issues += [_issue(name, document, p, message) for p, message in problems]
    if issues:
        raise SpecError(issues)
    return LoadedProduct(spec=spec, path=path, text=text, document=document)


def _problems(data: dict, folder: Path) -> tuple[ProductSpec | None, list[tuple[tuple, str]]]:
    """Every per-file check of a product's data (not YAML's own: see load_marked).

    Returns:
        the spec (None when pydantic rejects the data) and the problems found, each as
        (data path, message); the spec is valid when there are none.
    """
    problems = []
    spec = None
    try:
        spec = ProductSpec.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(data, exc.errors())
    output = data.get("output")
    if isinstance(output, dict) and isinstance(output.get("columns"), list):
        for sub_path, message in soda_contract_errors(output["columns"], output.get("checks")):
            problems.append((("output", *sub_path), message))
    if spec is not None and spec.transform.file is not None:
        sql_file = (folder / spec.transform.file).resolve()
        if not sql_file.is_file():
            problems.append((("transform", "file"), f"transform file not found: {sql_file}"))
    return spec, problems


def _issue(name: str, document: MarkedDocument, path: tuple, message: str) -> SpecIssue:
    line, column = document.locate(path)
    return SpecIssue(name, line, column, format_field_path(path), message)


def _pydantic_problems(data: dict, errors: list[dict]) -> list[tuple[tuple, str]]:
    """(data path, message) of pydantic's errors, less the type errors of union members that
    did not match when another member got further into the value (``schedule: [Bad-Name]`` is
    one issue, at ``schedule[0]``, not also "schedule: not a string")."""
    located = [(_error_path(data, err), err) for err in errors]
    deeper = {path[:n] for path, _ in located for n in range(len(path))}
    return [(path, _pydantic_message(err)) for path, err in located
            if not (err["type"].endswith("_type") and path in deeper)]


def _error_path(data: dict, error: dict) -> tuple:
    """The data path of a pydantic error, extended by a :class:`FieldError`'s own path."""
    loc = error["loc"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        loc = (*loc, *cause.path)
    return _data_path(data, loc, error["type"] == "missing")


def _pydantic_message(error: dict) -> str:
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
    return message


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


def standalone_specs(folder: Path) -> dict[str, ProductSpec]:
    """Every product of ``folder`` whose file is valid on its own, by name (the first file of a
    name wins), even when the folder as a whole does not load, e.g. because a reference
    between products broke. Used to find who reads a product.

    Returns:
        ``{product name: ProductSpec}``; files with errors are left out.
    """
    specs: dict[str, ProductSpec] = {}
    for path in spec_files(folder):
        try:
            spec = load_product_file(path, folder).spec
        except SpecError:
            continue
        specs.setdefault(spec.name, spec)
    return specs


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
                str(product.path), product.marks(), ("name",),
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
                issues.append(_issue(str(product.path), product.marks(), path,
                                     "a product cannot read or wait for itself"))
            elif ref not in known_names:
                issues.append(_issue(str(product.path), product.marks(), path,
                                     f"no product named {ref!r} in the products folder"))
            elif path[0] == "inputs" and ref in result.products:
                message = _unreadable_upstream(result.products[ref].spec)
                if message:
                    issues.append(_issue(str(product.path), product.marks(), path, message))
        issues += _future_pins(result, product)
        if issues:
            result.errors[product.path] = SpecError(issues)
            del result.products[name]


def _unreadable_upstream(upstream: ProductSpec) -> str | None:
    """Why a ``type: product`` input cannot read ``upstream``, or None when it can.

    Such inputs read published Parquet partitions; a product on a warehouse engine publishes
    a table instead, which a ``type: sql`` input reads (docs/engines.md).
    """
    engine = upstream.engine
    if engine.type == "duckdb":
        return None
    table = f"{engine.schema_name}.{product_table(upstream.name, upstream.major_version)}"
    return (f"product {upstream.name!r} runs on engine {engine.type} and publishes the table "
            f"{table} (connection {engine.conn_id!r}), not Parquet partitions: read it with a "
            f"type: sql input on conn_id {engine.conn_id} instead (see docs/engines.md)")
def _future_pins(result: FolderResult, product: LoadedProduct) -> list[SpecIssue]:
    """Inputs pinning a major their (valid) upstream has not reached: nothing publishes it."""
    issues = []
    for index, inp in enumerate(product.spec.inputs):
        upstream = result.products.get(getattr(inp, "product", None) or "")
        if isinstance(inp, ProductInput) and inp.major is not None and upstream is not None \
                and inp.major > upstream.spec.major_version:
            issues.append(_issue(
                str(product.path), product.marks(), ("inputs", index, "major"),
                f"product {inp.product!r} is at version {upstream.spec.version} and publishes "
                f"v{upstream.spec.major_version}; no v{inp.major} exists to read"))
    return issues


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
            str(product.path), product.marks(), ("inputs",),
            "dependency cycle: " + " -> ".join(cycle))])
