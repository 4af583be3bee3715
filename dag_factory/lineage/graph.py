"""The product graph from the specs (no backend needed), as text, Graphviz DOT or Mermaid.

Nodes are OpenLineage datasets (``namespace`` + ``name``, the names the events use) and
products (jobs); edges run from what a product reads to the product, and from the product to
its published dataset and export ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dag_factory.lineage import datasets as ds
from dag_factory.spec.models import ProductInput, ProductSpec, product_table


@dataclass
class ProductGraph:
    """Edges ``(source, target)`` between node ids, and a label per node.

    Dataset nodes are ``"<namespace>|<name>"``; product nodes are ``"product|<name>"``.
    """

    edges: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, target: str) -> None:
        if (source, target) not in self.edges:
            self.edges.append((source, target))


def _dataset_node(naming, graph: ProductGraph) -> str:
    node = f"{naming.get_namespace()}|{naming.get_name()}"
    graph.labels.setdefault(node, f"{naming.get_namespace()}:{naming.get_name()}")
    return node


def _static_source(spec: ProductSpec, inp, majors: dict[str, int]) -> dict:
    source = {**inp.model_dump(exclude_none=True), "product": spec.name}
    if isinstance(inp, ProductInput):
        source.update(product_name=inp.product, major=spec.read_major(inp.product, majors))
    return source


def _product_node(spec: ProductSpec, graph: ProductGraph) -> str:
    """The published product's node: its partitions folder, or on a warehouse engine its
    table, shown by connection like SQL inputs (the table's host needs the connection)."""
    if spec.engine.type == "duckdb":
        return _dataset_node(ds.product_naming(spec.name, spec.major_version), graph)
    table = f"{spec.engine.schema_name}.{product_table(spec.name, spec.major_version)}"
    node = f"table|{spec.engine.conn_id}|{table}"
    graph.labels.setdefault(node, f"table {table} on connection {spec.engine.conn_id}")
    return node


def build_graph(specs: dict[str, ProductSpec]) -> ProductGraph:
    """The graph of every product in ``specs`` (name -> spec). Templated paths keep their Jinja
    (``{{ ds }}``); SQL inputs are shown by connection, since their tables need the connection."""
    graph = ProductGraph()
    majors = {n: s.major_version for n, s in specs.items()}
    for name, spec in specs.items():
        job = f"product|{name}"
        graph.labels[job] = f"{name} v{spec.version}"
        for inp in spec.inputs:
            if inp.type == "sql":
                node = f"conn|{inp.conn_id}"
                graph.labels.setdefault(node, f"query on connection {inp.conn_id}")
                graph.add(node, job)
                continue
            for naming in ds.source_namings(_static_source(spec, inp, majors)):
                graph.add(_dataset_node(naming, graph), job)
        graph.add(job, _product_node(spec, graph))
        for port in spec.output.exports:
            naming = ds.s3_naming(port.uri) if port.type == "s3" else ds.file_naming(port.path)
            graph.add(job, _dataset_node(naming, graph))
    return graph


def neighbourhood(graph: ProductGraph, product: str) -> tuple[list[str], list[str]]:
    """Upstream and downstream dataset labels of one product (transitively), sorted."""
    start = f"product|{product}"

    def walk(forward: bool) -> set[str]:
        seen, frontier = set(), [start]
        while frontier:
            node = frontier.pop()
            for a, b in graph.edges:
                nxt = b if forward and a == node else a if not forward and b == node else None
                if nxt and nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return seen

    def label(nodes):
        return sorted(graph.labels[n] for n in nodes if not n.startswith("product|"))

    return label(walk(False)), label(walk(True))


def _ids(graph: ProductGraph) -> dict[str, str]:
    return {node: f"n{i}" for i, node in enumerate(sorted(graph.labels))}


def to_dot(graph: ProductGraph) -> str:
    """Graphviz DOT: products as boxes, datasets as ellipses."""
    ids = _ids(graph)
    lines = ["digraph dataproducts {", "  rankdir=LR;"]
    for node, label in sorted(graph.labels.items()):
        shape = "box" if node.startswith("product|") else "ellipse"
        escaped = label.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'  {ids[node]} [label="{escaped}", shape={shape}];')
    lines += [f"  {ids[a]} -> {ids[b]};" for a, b in graph.edges]
    return "\n".join(lines + ["}"]) + "\n"


def to_mermaid(graph: ProductGraph) -> str:
    """Mermaid flowchart: products as rectangles, datasets as rounded nodes."""
    ids = _ids(graph)
    lines = ["flowchart LR"]
    for node, label in sorted(graph.labels.items()):
        text = label.replace('"', "#quot;")
        lines.append(f'  {ids[node]}["{text}"]' if node.startswith("product|")
                     else f'  {ids[node]}("{text}")')
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in graph.edges]
    return "\n".join(lines) + "\n"


def graph_from_events(lines: list[str]) -> ProductGraph:
    """The product graph as a lineage backend would draw it from emitted events (JSON lines).

    COMPLETE events of task jobs ``<product>.<task>`` are grouped by product; staged datasets
    (``/_staging/``) are internal to a product and left out.
    """
    import json

    graph = ProductGraph()
    for line in lines:
        event = json.loads(line)
        job = event["job"]["name"]
        if event.get("eventType") != "COMPLETE" or "." not in job:
            continue
        product = job.split(".", 1)[0]
        node = f"product|{product}"
        graph.labels.setdefault(node, product)
        for dataset in event.get("inputs", []):
            if "/_staging/" not in dataset["name"]:
                graph.add(_event_node(dataset, graph), node)
        for dataset in event.get("outputs", []):
            if "/_staging/" not in dataset["name"]:
                graph.add(node, _event_node(dataset, graph))
    return graph


def _event_node(dataset: dict, graph: ProductGraph) -> str:
    node = f"{dataset['namespace']}|{dataset['name']}"
    graph.labels.setdefault(node, f"{dataset['namespace']}:{dataset['name']}")
    return node
