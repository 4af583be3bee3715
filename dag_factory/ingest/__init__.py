"""Ingest: bring one input port's data into the run's staging area as Parquet.

One source kind per module (``file``, ``s3``, ``http``, ``sql``, ``product``); each exposes
``fetch(source, target, context) -> rows`` and, where an input can arrive late,
``exists(source, context) -> bool``.
"""


def redact_url(url: str) -> str:
    """A URL safe for logs and UIs: user info and query values are replaced by ``***``."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    query = "&".join(f"{key}=***" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def location_of(source: dict) -> str:
    """Where an input port reads from, safe to log: path, URI, redacted URL, upstream product,
    or the connection id of a query."""
    kind = source.get("type")
    if kind == "http":
        return redact_url(source["url"])
    if kind == "product":
        return f"product {source.get('product_name') or source['product']}"
    if kind == "sql":
        return f"query on connection {source['conn_id']}"
    return source.get("path") or source.get("uri") or "?"
