"""Breaking-change check of a product's output contract between two versions.

The output contract is what a consumer of ``products/<name>/v<major>/`` relies on: the
partition key, the columns with their types, and the fail-level Soda checks that gate every
publish. One rule decides every case (docs/compatibility.md): a change is **compatible** when
every partition already published under the major still satisfies the new contract and readers
of the old contract can read the new partitions; otherwise it is **breaking**, and needs a
major version bump (semver 2.0.0, rule 8: incompatible changes increment the major), which
publishes to a new storage path. The ODCS notion is the same: a contract version whose major
changes is a new, incompatible contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dag_factory.contract.checks import (
    LOOSENED, CheckRef, compare_check, is_fail_level, parse_checks,
)
from dag_factory.contract.types import canonical_type, widens

BREAKING, COMPATIBLE = "breaking", "compatible"
# product metadata that documents the contract but does not constrain the data
DOC_FIELDS = ("title", "description", "domain", "owner", "tags")


@dataclass(frozen=True)
class ColumnContract:
    """One column: its declared (or, from an old manifest, published) type and Soda checks."""

    name: str
    data_type: str | None
    checks: tuple = ()
    description: str | None = None


@dataclass(frozen=True)
class OutputContract:
    """A product's output contract at one version.

    Attributes:
        product / version: the product name and its semver.
        partition_by: the partition column.
        columns: name -> :class:`ColumnContract`, in declared order.
        checks: dataset-level Soda checks (list as in the spec).
        docs: title, description, domain, owner, tags (None when not known, e.g. a manifest).
        checks_known: False for a manifest written before contracts were recorded: its
            checks are unknown, so only columns, types and partition key are compared.
    """

    product: str
    version: str
    partition_by: str
    columns: dict[str, ColumnContract]
    checks: tuple = ()
    docs: dict | None = None
    checks_known: bool = True

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


@dataclass(frozen=True)
class Change:
    """One difference between two contracts.

    Attributes:
        verdict: BREAKING or COMPATIBLE.
        subject: what changed (``"column carrier"``, ``"invalid check on column x"``, ...).
        text: how, old -> new (``"type BIGINT -> INTEGER (narrowed)"``).
    """

    verdict: str
    subject: str
    text: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.text}"


def contract_of_spec(spec) -> OutputContract:
    """The output contract of a :class:`~dag_factory.spec.models.ProductSpec`."""
    columns = {}
    for column in spec.output.columns:
        extra = column.model_extra or {}
        columns[column.name] = ColumnContract(column.name, column.data_type,
                                              tuple(column.checks or ()), extra.get("description"))
    docs = {"title": spec.title, "description": spec.description, "domain": spec.domain,
            "owner": spec.owner.model_dump(), "tags": sorted(spec.tags)}
    return OutputContract(spec.name, spec.version, spec.output.partition_by, columns,
                          tuple(spec.output.checks or ()), docs)


def contract_record(spec) -> dict[str, Any]:
    """The contract as plain JSON data, as publish writes it into every partition manifest
    (key ``contract``): ``{"partition_by", "columns": [Soda column dicts], "checks"}``.
    Values YAML reads as non-JSON types (a date in a check's ``attributes``) become strings."""
    record = {"partition_by": spec.output.partition_by,
              "columns": [c.model_dump(exclude_none=True) for c in spec.output.columns],
              "checks": list(spec.output.checks or [])}
    return json.loads(json.dumps(record, default=str))


def contract_of_manifest(manifest: dict) -> OutputContract:
    """The output contract a published partition was written under.

    Uses the manifest's ``contract`` record; a manifest from before it was recorded gives the
    published ``schema`` (actual column types) with checks unknown. Declared types missing from
    the record are taken from the published schema.

    Raises:
        KeyError: the manifest lacks ``product``, ``version`` or ``partition``.
    """
    published = {c["name"]: c["type"] for c in manifest.get("schema") or []}
    record = manifest.get("contract")
    if record is None:
        columns = {n: ColumnContract(n, t) for n, t in published.items()}
        return OutputContract(manifest["product"], manifest["version"],
                              manifest["partition"]["key"], columns, checks_known=False)
    columns = {}
    for column in record["columns"]:
        name = column["name"]
        columns[name] = ColumnContract(name, column.get("data_type") or published.get(name),
                                       tuple(column.get("checks") or ()),
                                       column.get("description"))
    return OutputContract(manifest["product"], manifest["version"], record["partition_by"],
                          columns, tuple(record.get("checks") or ()))


def compare_contracts(old: OutputContract, new: OutputContract) -> list[Change]:
    """Every change from ``old`` to ``new`` with its verdict, breaking ones first.

    Rules (docs/compatibility.md): partition key changed, column removed or renamed, type
    narrowed or changed outside the widening lattice, type no longer declared, column added
    with a fail-level ``missing`` check, fail-level check added or tightened, warn -> fail:
    breaking. Column added as optional, type widened, check loosened or removed, warn-level
    checks, documentation: compatible.
    """
    changes: list[Change] = []
    if old.partition_by != new.partition_by:
        changes.append(Change(BREAKING, "partition key",
                              f"{old.partition_by} -> {new.partition_by}"))
    changes += _column_changes(old, new)
    if old.checks_known:
        changes += _check_changes(old, new)
    changes += _doc_changes(old, new)
    return sorted(changes, key=lambda c: c.verdict != BREAKING)


def _column_changes(old: OutputContract, new: OutputContract) -> list[Change]:
    removed = [n for n in old.columns if n not in new.columns]
    added = [n for n in new.columns if n not in old.columns]
    renamed = _renames(old, new, removed, added)
    changes = []
    for name in removed:
        if name in renamed:
            changes.append(Change(BREAKING, f"column {name}", f"renamed to {renamed[name]} "
                                  f"({_type_text(old.columns[name].data_type)})"))
        else:
            changes.append(Change(BREAKING, f"column {name}",
                                  f"removed (was {_type_text(old.columns[name].data_type)})"))
    for name in added:
        if name in renamed.values():
            continue
        column = new.columns[name]
        required = any(ref.kind == "missing" and is_fail_level(ref.kind, params)
                       for ref, params in parse_checks(list(column.checks), name).items())
        if required:
            changes.append(Change(BREAKING, f"column {name}", "added as required "
                                  "(fail-level missing check): published partitions lack it"))
        else:
            changes.append(Change(COMPATIBLE, f"column {name}",
                                  f"added as optional ({_type_text(column.data_type)})"))
    for name in (n for n in new.columns if n in old.columns):
        change = _type_change(name, old.columns[name].data_type, new.columns[name].data_type,
                              is_partition=name == new.partition_by)
        if change:
            changes.append(change)
    return changes


def _renames(old: OutputContract, new: OutputContract, removed: list[str],
             added: list[str]) -> dict[str, str]:
    """Removed -> added column at the same position with the same type: reported as a rename."""
    old_names, new_names = list(old.columns), list(new.columns)
    renames = {}
    for name in removed:
        index = old_names.index(name)
        if index < len(new_names) and new_names[index] in added and \
                _same_type(old.columns[name].data_type, new.columns[new_names[index]].data_type):
            renames[name] = new_names[index]
    return renames


def _same_type(a: str | None, b: str | None) -> bool:
    return a is None and b is None or (a is not None and b is not None
                                       and canonical_type(a) == canonical_type(b))


def _type_text(data_type: str | None) -> str:
    return canonical_type(data_type) if data_type else "type not declared"


def _type_change(name: str, old: str | None, new: str | None, is_partition: bool) -> Change | None:
    subject = f"column {name}"
    if old is None and new is None:
        return None
    if new is None:
        return Change(BREAKING, subject, f"type {canonical_type(old)} -> not declared "
                      "(the column may publish any type)")
    if old is None:
        return Change(COMPATIBLE, subject, f"type now declared as {canonical_type(new)}")
    old_c, new_c = canonical_type(old), canonical_type(new)
    if old_c == new_c:
        return None
    if is_partition:
        return Change(BREAKING, subject, f"type {old_c} -> {new_c} (partition column: its "
                      "values name the partition directories)")
    if widens(old_c, new_c):
        return Change(COMPATIBLE, subject, f"type {old_c} -> {new_c} (widened)")
    narrowed = widens(new_c, old_c)
    return Change(BREAKING, subject,
                  f"type {old_c} -> {new_c} ({'narrowed' if narrowed else 'not a widening'})")


def _all_checks(contract: OutputContract) -> dict[CheckRef, dict]:
    indexed = parse_checks(list(contract.checks), None)
    for column in contract.columns.values():
        indexed.update(parse_checks(list(column.checks), column.name))
    return indexed


def _check_changes(old: OutputContract, new: OutputContract) -> list[Change]:
    old_checks, new_checks = _all_checks(old), _all_checks(new)
    added_columns = set(new.columns) - set(old.columns)
    changes = []
    for ref, params in old_checks.items():
        if ref not in new_checks and (ref.column is None or ref.column in new.columns):
            changes.append(Change(COMPATIBLE, str(ref), "removed"))
    for ref, params in new_checks.items():
        if ref.column in added_columns:
            continue  # judged with the column's addition
        if ref not in old_checks:
            changes.append(_added_check(ref, params))
            continue
        for delta in compare_check(ref.kind, old_checks[ref], params):
            verdict = COMPATIBLE if delta.direction == LOOSENED else BREAKING
            text = delta.text if verdict == COMPATIBLE else f"tightened: {delta.text}"
            if verdict == COMPATIBLE and not delta.text.startswith(("level", "warn")):
                text = f"loosened: {delta.text}"
            changes.append(Change(verdict, str(ref), text))
    return changes


def _added_check(ref: CheckRef, params: dict) -> Change:
    if not is_fail_level(ref.kind, params):
        return Change(COMPATIBLE, str(ref), "new warn-level check")
    if ref.kind == "missing":
        return Change(BREAKING, f"column {ref.column}",
                      "made required: new fail-level missing check")
    return Change(BREAKING, str(ref), "new fail-level check")


def _doc_changes(old: OutputContract, new: OutputContract) -> list[Change]:
    changes = []
    if old.docs is not None and new.docs is not None:
        for key in DOC_FIELDS:
            if old.docs.get(key) != new.docs.get(key):
                changes.append(Change(COMPATIBLE, key, "changed (documentation)"))
    for name in (n for n in new.columns if n in old.columns):
        if old.docs is not None and \
                old.columns[name].description != new.columns[name].description:
            changes.append(Change(COMPATIBLE, f"column {name}",
                                  "description changed (documentation)"))
    return changes


@dataclass(frozen=True)
class Consumer:
    """A product that reads another through a ``type: product`` input.

    Attributes:
        name: the consuming product; input: its input name; pinned: the major it pins, or None
        (it follows the upstream's current major).
    """

    name: str
    input: str
    pinned: int | None

    def __str__(self) -> str:
        pin = "follows the current major" if self.pinned is None else f"pins major {self.pinned}"
        return f"{self.name} (input {self.input}, {pin})"


def consumers_of(product: str, specs: dict[str, Any]) -> list[Consumer]:
    """Products in ``specs`` (name -> ProductSpec) whose ``type: product`` inputs read
    ``product``, sorted by name."""
    found = []
    for name, spec in sorted(specs.items()):
        for inp in spec.inputs:
            if inp.type == "product" and inp.product == product:
                found.append(Consumer(name, inp.name, inp.major))
    return found


@dataclass
class ProductReport:
    """The verdict for one product.

    Attributes:
        product: the name; old_version / new_version: None when added / removed.
        changes: every contract change; consumers: who reads it (from the new folder).
        errors: why validation fails (empty: passes); notes: what the owner should know.
    """

    product: str
    old_version: str | None
    new_version: str | None
    changes: list[Change] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == BREAKING]

    @property
    def ok(self) -> bool:
        return not self.errors


def judge(old: OutputContract | None, new: OutputContract | None,
          consumers: list[Consumer], baseline: str) -> ProductReport:
    """Compare two contracts of one product and decide whether the version allows the change.

    Args:
        old: the contract at the baseline (None: the product is new).
        new: the contract now (None: the product was removed).
        consumers: products reading it, from the folder being validated.
        baseline: how the baseline is named in messages (``"git ref main"``, ...).

    Returns:
        a :class:`ProductReport`; ``errors`` holds one message per failing rule, naming the
        product, each breaking change (old -> new) and the consumers.
    """
    name = (new or old).product
    report = ProductReport(name, old and old.version, new and new.version, consumers=consumers)
    readers = ", ".join(str(c) for c in consumers) or "no consumer in the folder"
    if old is None:
        report.notes.append(f"new product (not in {baseline})")
        return report
    if new is None:
        if consumers:
            report.errors.append(f"{name}: removed, but read by {readers}")
        else:
            report.notes.append(f"removed; its published tree products/{name}/v{old.major}/ "
                                f"stays until retired (dataproducts retire {name} --major "
                                f"{old.major})")
        return report
    report.changes = compare_contracts(old, new)
    if not old.checks_known:
        report.notes.append("the baseline manifest predates contract recording: checks and "
                            "required flags were not compared, only partition key and columns")
    if new.major < old.major:
        report.errors.append(f"{name}: version {old.version} -> {new.version} lowers the major")
    elif new.major > old.major:
        _major_bump_notes(report, old, new)
    elif report.breaking:
        listed = "; ".join(str(c) for c in report.breaking)
        report.errors.append(
            f"{name}: breaking change without a major version bump ({old.version} -> "
            f"{new.version}): {listed}; read by {readers}. Bump version to "
            f"{new.major + 1}.0.0 to publish it as v{new.major + 1}, or make the change "
            "compatible")
    elif report.changes and new.version == old.version:
        report.notes.append(f"the contract changed compatibly but version is still "
                            f"{new.version}: semver asks for a minor bump")
    return report


def _major_bump_notes(report: ProductReport, old: OutputContract, new: OutputContract) -> None:
    name = report.product
    report.notes.append(
        f"major {old.major} -> {new.major}: the product publishes to products/{name}/v{new.major}/ "
        f"(asset dataproduct://{name}/v{new.major}); products/{name}/v{old.major}/ keeps its "
        f"partitions and stays readable until retired (dataproducts retire {name} --major "
        f"{old.major}), but gets no new ones")
    for consumer in report.consumers:
        if consumer.pinned is None:
            # An unpinned input follows the current major, so a breaking bump would reach it
            # silently on its next run: that is the change this check exists to stop.
            message = (f"{consumer.name} does not pin a major for input {consumer.input}: it "
                       f"reads v{new.major} from its next run. Pin `major: {old.major}` to stay on "
                       f"v{old.major} while it migrates, or `major: {new.major}` once it has")
            if report.breaking:
                report.errors.append(f"{name}: breaking major bump {old.version} -> {new.version} "
                                     f"would reach an unpinned consumer: {message}")
            else:
                report.notes.append(f"WARNING: {message}")
        elif consumer.pinned == old.major:
            report.notes.append(f"{consumer.name} pins major {old.major}: it keeps reading "
                                f"v{old.major}'s partitions until it moves to `major: "
                                f"{new.major}`")
