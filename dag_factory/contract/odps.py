"""A product as an ODPS v1.0.0 data product (Open Data Product Standard, Bitol).

* ``id`` the product name, ``version`` the spec's version, ``status`` as for the contract;
* ``inputPorts``: one per spec input. A ``type: product`` input names the upstream product's
  ODCS contract (its id and version); a source input (file, s3, http, sql) names
  :func:`~dag_factory.contract.ids.input_contract_id`, since ODPS requires a contract id and
  the factory declares no schema for sources; its type and (redacted) location are custom
  properties;
* ``outputPorts``: ``published`` (the partitions under the data folder) and one per
  ``output.exports`` entry, all promising the product's ODCS contract (they carry the same
  rows), each naming its ODCS ``server`` and listing the upstream contracts it depends on;
* ``team``/``support`` from ``owner``.

Field names follow the official JSON Schema ``odps-json-schema-v1.0.0.json``.
"""

from __future__ import annotations

from typing import Any, Mapping

from dag_factory.contract.ids import contract_id, input_contract_id
from dag_factory.contract.odcs import (
    PUBLISHED_SERVER, plain, support_of, team_of, export_server_id, status_of, without_jinja,
)
from dag_factory.spec.models import ProductInput, ProductSpec, S3Export

API_VERSION = "v1.0.0"


def _upstream(spec: ProductSpec, item: ProductInput, specs: Mapping[str, ProductSpec]):
    upstream = specs.get(item.product)
    if upstream is None:
        raise ValueError(f"{spec.name}: input {item.name!r} reads product {item.product!r}, "
                         f"which is not among the valid products ({', '.join(sorted(specs))})")
    return upstream


def _input_port(spec: ProductSpec, item, specs: Mapping[str, ProductSpec]) -> dict:
    from dag_factory.ingest import location_of

    if isinstance(item, ProductInput):
        upstream = _upstream(spec, item, specs)
        return {"name": item.name, "version": upstream.version,
                "contractId": contract_id(upstream.name, upstream.major_version),
                "customProperties": [{"property": "type", "value": "product"},
                                     {"property": "product", "value": upstream.name}]}
    source = item.model_dump(mode="json")
    props = [{"property": "type", "value": item.type},
             {"property": "location", "value": location_of(source)}]
    if getattr(item, "format", None):
        props.append({"property": "format", "value": item.format})
    if getattr(item, "conn_id", None):
        props.append({"property": "airflowConnId", "value": item.conn_id})
    port: dict[str, Any] = {"name": item.name, "version": spec.version,
                            "contractId": input_contract_id(spec.name, spec.major_version,
                                                            item.name),
                            "customProperties": props}
    return port


def _output_ports(spec: ProductSpec, specs: Mapping[str, ProductSpec]) -> list[dict]:
    cid = contract_id(spec.name, spec.major_version)
    inputs = []
    for item in spec.inputs:
        if isinstance(item, ProductInput):
            upstream = _upstream(spec, item, specs)
            entry = {"id": contract_id(upstream.name, upstream.major_version),
                     "version": upstream.version}
            if entry not in inputs:
                inputs.append(entry)
    where = (f"Table {spec.engine.schema_name}.{spec.name}_v{spec.major_version} on Airflow "
             f"connection {spec.engine.conn_id}, partitioned by {spec.output.partition_by}"
             if spec.engine.type == "postgres" else
             f"Parquet partitions by {spec.output.partition_by} under "
             f"products/{spec.name}/v{spec.major_version} of the data folder")
    ports = [{"name": PUBLISHED_SERVER, "version": spec.version, "contractId": cid,
              "type": "dataset",
              "description": f"{where}; "
                             f"Airflow Asset dataproduct://{spec.name}/v{spec.major_version}.",
              "customProperties": [{"property": "server", "value": PUBLISHED_SERVER}]}]
    for position, export in enumerate(spec.output.exports, start=1):
        where = export.uri if isinstance(export, S3Export) else export.path
        ports.append({"name": export_server_id(position), "version": spec.version,
                      "contractId": cid, "type": export.type,
                      "description": f"Each run's rows as {export.format} at "
                                     f"{without_jinja(where)}.",
                      "customProperties": [{"property": "server",
                                            "value": export_server_id(position)}]})
    if inputs:
        for port in ports:
            port["inputContracts"] = inputs
    return ports


def odps_product(spec: ProductSpec, specs: Mapping[str, ProductSpec]) -> dict:
    """The ODPS v1.0.0 data product of ``spec``.

    Args:
        spec: a valid product spec; specs: the valid products of its folder by name (the
            upstream products of ``type: product`` inputs are looked up here).

    Returns:
        The product as plain JSON-ready data.

    Raises:
        ValueError: a ``type: product`` input names a product missing from ``specs``.
    """
    product: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "id": spec.name,
        "name": spec.name,
        "version": spec.version,
        "status": status_of(spec),
    }
    if spec.domain:
        product["domain"] = spec.domain
    product["description"] = {"purpose": (spec.description or spec.title).strip()}
    if spec.tags:
        product["tags"] = list(spec.tags)
    product["inputPorts"] = [_input_port(spec, item, specs) for item in spec.inputs]
    product["outputPorts"] = _output_ports(spec, specs)
    product["support"] = [{k: v for k, v in item.items() if k != "id"} for item in support_of(spec)]
    product["team"] = team_of(spec)
    product["customProperties"] = [{"property": "title", "value": spec.title},
                                   {"property": "airflowDagId", "value": spec.name}]
    return plain(product)
