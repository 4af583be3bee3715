"""A product's output as an ODCS v3.1.0 data contract (Open Data Contract Standard, Bitol).

One contract per product major version (id from :mod:`dag_factory.contract.ids`), built from
the spec alone, so the same spec always gives the same document:

* ``schema``: one object, the published table, with a property per ``output.columns`` entry:
  ``physicalType`` the SQL type as written, ``logicalType`` (+ options) from
  :mod:`~dag_factory.contract.logical_types`, ``required``/``unique``/``minimum``/``maximum``
  from what the fail-level checks guarantee, ``partitioned`` for ``partition_by``;
* ``quality``: the Soda checks as ODCS rules (:mod:`~dag_factory.contract.quality`);
* ``slaProperties``: ``slo.freshness`` as ``latency`` and ``freshness``, ``frequency`` from
  the schedule, ``successRate`` and ``qualityPassRate`` (percent, over ``slo.window``);
* ``servers``: the published partitions under the data folder and each ``output.exports``
  port (connection ids only, never credentials);
* ``team``/``support`` from ``owner``; ``status`` ``draft`` for a pre-release version
  (``1.0.0-rc1``), else ``active``.

Field names follow the official JSON Schema ``odcs-json-schema-v3.1.0.json``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from dag_factory.contract.ids import contract_id
from dag_factory.contract.logical_types import logical_type
from dag_factory.contract.quality import column_quality, dataset_quality
from dag_factory.spec.models import FileExport, ProductSpec, S3Export, parse_percent

API_VERSION = "v3.1.0"
PUBLISHED_SERVER = "published"
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_DURATION_UNITS = {"s": "s", "m": "min", "h": "h", "d": "d"}
#: preset -> (cron expression, value, unit) of ``frequency``
_PRESETS = {
    "@hourly": ("0 * * * *", 1, "h"), "@daily": ("0 0 * * *", 1, "d"),
    "@weekly": ("0 0 * * 0", 7, "d"), "@monthly": ("0 0 1 * *", 1, "month"),
    "@quarterly": ("0 0 1 */3 *", 3, "month"), "@yearly": ("0 0 1 1 *", 1, "y"),
    "@annually": ("0 0 1 1 *", 1, "y"),
}


def status_of(spec: ProductSpec) -> str:
    """``draft`` for a semver pre-release (``1.1.0-rc1``), else ``active`` (the spec has no
    status of its own: a product in the folder is in service)."""
    return "draft" if "-" in spec.version.split("+", 1)[0] else "active"


def configured_data_folder() -> str:
    """``[dataproducts] data_folder`` as configured: an ``s3://bucket/prefix`` URI as it is
    (the contract can name it before the storage backend reads it), else the local path of
    :func:`dag_factory.config.data_folder`."""
    from airflow.sdk import conf

    from dag_factory.config import SECTION, data_folder

    value = conf.get(SECTION, "data_folder", fallback=None)
    if value and value.startswith("s3://"):
        return value.rstrip("/")
    return str(data_folder())


def published_glob(spec: ProductSpec, data_folder: str | Path) -> str:
    """The published Parquet files of the product's major version under ``data_folder``:
    ``<folder>/products/<name>/v<major>/*/part-0.parquet`` locally; ``.../*/part-*.parquet`` in
    an ``s3://bucket/prefix`` folder, where each partition's data file has a unique name that
    its ``_manifest.json`` names (docs/architecture.md, "Reading a product")."""
    folder = str(data_folder).rstrip("/")
    data_file = "part-*.parquet" if folder.startswith("s3://") else "part-0.parquet"
    return f"{folder}/products/{spec.name}/v{spec.major_version}/*/{data_file}"


def without_jinja(template: str) -> str:
    """A location template with every Jinja expression as ``*`` (``x/{{ ds }}.csv`` ->
    ``x/*.csv``): the glob of all the files it names."""
    return _JINJA.sub("*", template)


def _published_server(spec: ProductSpec, data_folder: str | Path) -> dict:
    if spec.engine.type == "postgres":
        return _postgres_server(spec)
    location = published_glob(spec, data_folder)
    server: dict[str, Any] = {"id": PUBLISHED_SERVER, "server": PUBLISHED_SERVER}
    if location.startswith("s3://"):
        server.update({"type": "s3", "location": location, "format": "parquet"})
    else:
        server.update({"type": "local", "path": location, "format": "parquet"})
    server["description"] = (f"Published partitions: Hive-style directories "
                             f"{spec.output.partition_by}=<value>/ with part-0.parquet and "
                             "_manifest.json, each replaced atomically by its run.")
    if location.startswith("s3://"):
        server["description"] = (
            f"Published partitions: Hive-style prefixes {spec.output.partition_by}=<value>/, "
            "each with a _manifest.json that names its one data file (part-<run>-<token>.parquet), "
            "written last when its run replaces the partition. Read through the manifests: a "
            "prefix can briefly hold a data file being published or replaced.")
    return server


def _postgres_server(spec: ProductSpec) -> dict:
    """The product table on ``engine: postgres`` as an ODCS ``postgres`` server: host, port and
    database from the Airflow connection when this process can read it (never its login or
    password), else marked unresolved with the connection id to look them up."""
    engine = spec.engine
    server: dict[str, Any] = {"id": PUBLISHED_SERVER, "server": PUBLISHED_SERVER,
                              "type": "postgres"}
    server.update(_postgres_address(engine.conn_id))
    server["schema"] = engine.schema_name
    server["description"] = (f"Product table {engine.schema_name}.{spec.name}_v{spec.major_version}"
                             f": the rows of each {spec.output.partition_by} value are replaced "
                             "in one transaction by its run (docs/engines.md).")
    server["customProperties"] = [{"property": "airflowConnId", "value": engine.conn_id}]
    return server


def _postgres_address(conn_id: str) -> dict[str, Any]:
    unresolved = f"unresolved: see Airflow connection {conn_id}"
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - no such connection, or none readable in this process
        return {"host": unresolved, "port": 5432, "database": unresolved}
    return {"host": conn.host or "localhost", "port": int(conn.port or 5432),
            "database": conn.schema or "postgres"}


def export_server_id(position: int) -> str:
    """The server id of the ``position``-th (1-based) ``output.exports`` entry: ``export-1``."""
    return f"export-{position}"


def _export_server(position: int, export, data_folder: str | Path) -> dict:
    server_id = export_server_id(position)
    server: dict[str, Any] = {"id": server_id, "server": server_id}
    if isinstance(export, S3Export):
        server.update({"type": "s3", "location": without_jinja(export.uri), "format": export.format})
        template = export.uri
        extra = [{"property": "airflowConnId", "value": export.conn_id}]
    else:
        assert isinstance(export, FileExport)
        template = f"{str(data_folder).rstrip('/')}/{export.path}"
        server.update({"type": "local", "path": without_jinja(template), "format": export.format})
        extra = []
    server["description"] = "Each run's published rows, one file per run (export port)."
    server["customProperties"] = [{"property": "locationTemplate", "value": template,
                                   "description": "Jinja with Airflow macros, rendered per run"},
                                  *extra]
    return server


def _property(column, partition_by: str) -> dict:
    quality = column_quality(column.name, column.checks)
    facts = quality.facts
    prop: dict[str, Any] = {"name": column.name}
    extra = dict(column.model_extra or {})
    if extra.get("description"):
        prop["description"] = str(extra.pop("description"))
    kind = logical_type(column.data_type)
    options = dict(kind.options)
    if kind.name:
        prop["logicalType"] = kind.name
    if column.data_type:
        prop["physicalType"] = column.data_type
    if kind.name in ("integer", "number"):
        if facts.minimum is not None:
            options["minimum"] = facts.minimum
        if facts.maximum is not None:
            options["maximum"] = facts.maximum
    if kind.name == "string" and isinstance(extra.get("character_maximum_length"), int):
        options["maxLength"] = extra.pop("character_maximum_length")
    if options and kind.name:
        prop["logicalTypeOptions"] = options
    prop["required"] = facts.required
    if facts.unique:
        prop["unique"] = True
    if column.name == partition_by:
        prop.update({"partitioned": True, "partitionKeyPosition": 1})
    if quality.rules:
        prop["quality"] = quality.rules
    if extra:  # other Soda column keys (e.g. optional): kept, not interpreted
        prop["customProperties"] = [{"property": _camel(k), "value": v}
                                    for k, v in extra.items()]
    return prop


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def _schema_object(spec: ProductSpec) -> dict:
    obj: dict[str, Any] = {
        "name": spec.name,
        "physicalName": (f"{spec.engine.schema_name}.{spec.name}_v{spec.major_version}"
                         if spec.engine.type == "postgres"
                         else f"products/{spec.name}/v{spec.major_version}"),
        "physicalType": "table",
        "businessName": spec.title,
        "logicalType": "object",
    }
    if spec.description:
        obj["description"] = spec.description.strip()
    obj["properties"] = [_property(c, spec.output.partition_by) for c in spec.output.columns]
    quality = dataset_quality(spec.output.checks)
    if quality:
        obj["quality"] = quality
    return obj


def _duration(text: str) -> tuple[float | int, str]:
    """``"26h"`` -> ``(26, "h")``; weeks become days."""
    number, unit = float(text[:-1]), text[-1]
    if unit == "w":
        number, unit = number * 7, "d"
    return (int(number) if number.is_integer() else number), _DURATION_UNITS[unit]


def _frequency(spec: ProductSpec) -> dict | None:
    schedule = spec.schedule
    if isinstance(schedule, list):
        return {"property": "frequency", "value": "asset-triggered",
                "scheduler": "airflow-assets", "schedule": ", ".join(schedule),
                "description": "Runs when every upstream product listed in schedule has "
                               "published since its last run."}
    if schedule is None or schedule in ("@once", "@continuous"):
        return None
    if schedule in _PRESETS:
        cron, value, unit = _PRESETS[schedule]
        return {"property": "frequency", "value": value, "unit": unit,
                "scheduler": "cron", "schedule": cron}
    item: dict[str, Any] = {"property": "frequency", "value": schedule,
                            "scheduler": "cron", "schedule": schedule}
    interval = _regular_interval(schedule, spec.start_date)
    if interval is not None:
        item["value"], item["unit"] = interval
    return item


def _regular_interval(cron: str, start: dt.date) -> tuple[int, str] | None:
    """The fixed interval of a cron expression (e.g. ``0 6 * * *`` -> ``(1, "d")``), or None
    when its fire times are not evenly spaced (e.g. weekdays only)."""
    from croniter import croniter

    it = croniter(cron, dt.datetime(start.year, start.month, start.day))
    fires = [it.get_next(dt.datetime) for _ in range(9)]
    gaps = {(b - a).total_seconds() for a, b in zip(fires, fires[1:])}
    if len(gaps) != 1:
        return None
    seconds = int(gaps.pop())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "s"


def _sla_properties(spec: ProductSpec) -> list[dict]:
    slo, element = spec.slo, f"{spec.name}.{spec.output.partition_by}"
    items: list[dict] = []
    if slo.freshness:
        value, unit = _duration(slo.freshness)
        text = (f"The newest published partition is at most {slo.freshness} old (measured "
                "from the end of its data interval).")
        for name in ("latency", "freshness"):
            items.append({"id": name, "property": name, "value": value, "unit": unit,
                          "element": element, "description": text})
    frequency = _frequency(spec)
    if frequency:
        items.append({"id": "frequency", **frequency})
    window_value, window_unit = _duration(slo.window)
    for key, name, what in (("success_rate", "successRate", "runs that publish"),
                            ("quality_pass_rate", "qualityPassRate",
                             "quality gates that pass (a warning passes)")):
        target = getattr(slo, key)
        if target:
            percent = round(parse_percent(target) * 100, 6)
            items.append({"id": name, "property": name,
                          "value": int(percent) if percent.is_integer() else percent,
                          "unit": "percent", "valueExt": slo.window,
                          "description": f"At least {target} of {what}, over a rolling "
                                         f"{window_value} {window_unit} window (valueExt)."})
    return items


def team_of(spec: ProductSpec) -> dict:
    """ODCS/ODPS ``team`` from the spec's owner: the team name, its contact address as owner."""
    return {"name": spec.owner.team,
            "members": [{"username": spec.owner.email, "role": "owner",
                         "description": "Team contact address"}]}


def support_of(spec: ProductSpec) -> list[dict]:
    """ODCS ``support`` channels from the spec's owner: the team email and the runbook."""
    items = [{"id": "email", "channel": "email", "url": f"mailto:{spec.owner.email}",
              "tool": "email", "scope": "issues"}]
    if spec.owner.runbook:
        items.append({"id": "runbook", "channel": "runbook", "url": spec.owner.runbook,
                      "tool": "other", "description": "On-call runbook"})
    return items


def _description(spec: ProductSpec) -> dict:
    source = ("Query the table of the" if spec.engine.type == "postgres"
              else "Read the Parquet files of the")
    text = {"purpose": (spec.description or spec.title).strip(),
            "usage": f"{source} '{PUBLISHED_SERVER}' server; each "
                     f"{spec.output.partition_by} value is one partition, replaced as a whole "
                     "when its run is re-run."}
    if spec.end_date:
        text["limitations"] = f"No partitions after {spec.end_date.isoformat()} (end_date)."
    return text


def plain(value: Any) -> Any:
    """Dates and times as ISO strings, tuples as lists, recursively: JSON-ready values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return value


def odcs_contract(spec: ProductSpec, data_folder: str | Path) -> dict:
    """The ODCS v3.1.0 data contract of ``spec``'s output.

    Args:
        spec: a valid product spec; data_folder: the ``[dataproducts] data_folder`` the
            published partitions live under (a local path or ``s3://bucket/prefix``).

    Returns:
        The contract as plain JSON-ready data (dicts, lists, str, numbers, bool, None), keys
        in the order ODCS documents them.

    Raises:
        ValueError: a Soda check in the spec is malformed (a valid spec never has one).
    """
    contract: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": contract_id(spec.name, spec.major_version),
        "name": spec.name,
        "version": spec.version,
        "status": status_of(spec),
    }
    if spec.domain:
        contract["domain"] = spec.domain
    if spec.tags:
        contract["tags"] = list(spec.tags)
    contract["description"] = _description(spec)
    contract["servers"] = [_published_server(spec, data_folder)] + [
        _export_server(i, e, data_folder) for i, e in enumerate(spec.output.exports, start=1)]
    contract["schema"] = [_schema_object(spec)]
    contract["team"] = team_of(spec)
    contract["support"] = support_of(spec)
    sla = _sla_properties(spec)
    if sla:
        contract["slaProperties"] = sla
    contract["customProperties"] = [
        {"property": "airflowDagId", "value": spec.name},
        {"property": "airflowAsset", "value": f"dataproduct://{spec.name}/v{spec.major_version}"},
    ]
    return plain(contract)
