"""Secrets in input URLs never reach logs, errors or DAG docs."""

from dag_factory.ingest import location_of, redact_url


def test_redact_url_hides_user_info_and_query_values():
    url = "https://bob:s3cret@api.example.com:8443/v1/export.csv?token=abc123&day=2013-01-01"
    redacted = redact_url(url)
    assert redacted == "https://***@api.example.com:8443/v1/export.csv?token=***&day=***"
    assert "s3cret" not in redacted and "abc123" not in redacted


def test_location_of_each_input_kind():
    assert location_of({"type": "file", "path": "landing/x.csv"}) == "landing/x.csv"
    assert location_of({"type": "s3", "uri": "s3://b/k.csv"}) == "s3://b/k.csv"
    assert location_of({"type": "http", "url": "http://h/x.csv?key=k"}) == "http://h/x.csv?key=***"
    assert location_of({"type": "sql", "conn_id": "warehouse", "query": "select 1"}) == \
        "query on connection warehouse"
    assert location_of({"type": "product", "product": "a", "product_name": "a"}) == "product a"


def test_dag_docs_show_redacted_urls(tmp_path):
    from dag_factory.build.docs import product_doc_md
    from dag_factory.spec.loading import load_product_file
    from helpers import demo_yaml

    text = demo_yaml("weather_daily").replace(
        "    type: file\n    path: landing/nycflights13/weather/{{ ds }}.csv\n",
        "    type: http\n    url: https://feed.example.com/{{ ds }}.csv?api_key=TOPSECRET\n")
    (tmp_path / "weather_daily.yaml").write_text(text)
    spec = load_product_file(tmp_path / "weather_daily.yaml").spec
    doc = product_doc_md(spec, "weather_daily.yaml")
    assert "TOPSECRET" not in doc and "api_key=***" in doc
