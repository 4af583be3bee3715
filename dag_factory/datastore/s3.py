"""The S3 store: the data folder is ``s3://bucket/prefix``, reached through the amazon
provider's ``S3Hook`` (connection ``[dataproducts] data_conn_id``).

Every boto error becomes :class:`~dag_factory.datastore.errors.StorageError` or
:class:`~dag_factory.datastore.errors.NotFound` with a message naming the operation, the
location and the connection id; credentials and endpoint URLs never appear in it.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from dag_factory.datastore.errors import NotFound, StorageError
from dag_factory.datastore.s3path import S3Path
from dag_factory.datastore.stored import StoredFile

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled"}
_DELETE_BATCH = 1000  # S3's limit of keys per DeleteObjects request


class S3Store:
    """Objects of an S3 data folder.

    Args:
        conn_id: the Airflow AWS connection (``AIRFLOW_CONN_<ID>`` JSON with ``endpoint_url``
            in ``extra`` works for S3-compatible services).
    """

    def __init__(self, conn_id: str):
        self.conn_id = conn_id
        self._client = None
        self._lock = threading.Lock()
        self._buckets_seen: set[str] = set()

    @property
    def client(self):
        """The boto3 S3 client of the connection (created once per store; thread-safe)."""
        with self._lock:
            if self._client is None:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                with self._errors("connect to S3", None):
                    self._client = S3Hook(aws_conn_id=self.conn_id).get_conn()
        return self._client

    def exists(self, location: S3Path) -> bool:
        """True when the object exists (HEAD).

        Raises:
            StorageError: the bucket does not exist, or access is denied.
        """
        with self._errors("check", location):
            try:
                self.client.head_object(Bucket=location.bucket, Key=location.key)
                return True
            except _client_error() as exc:
                if _code(exc) not in _NOT_FOUND:
                    raise
        self._check_bucket(location)
        return False

    def read_bytes(self, location: S3Path) -> bytes:
        """The object's content. Raises NotFound / StorageError."""
        with self._errors("read", location):
            return self.client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()

    def write_bytes(self, location: S3Path, data: bytes) -> None:
        """PUT the object (a single PUT: readers see the old object or the new one)."""
        with self._errors("write", location):
            self.client.put_object(Bucket=location.bucket, Key=location.key, Body=data)

    def upload(self, local: Path, location: S3Path) -> None:
        """Upload a local file (multipart for large files; an object appears only complete)."""
        with self._errors("upload to", location):
            self.client.upload_file(str(local), location.bucket, location.key)

    def download(self, location: S3Path, local: Path) -> None:
        """Download the object to ``local``. Raises NotFound / StorageError."""
        local.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("download", location):
            self.client.download_file(location.bucket, location.key, str(local))

    def list_files(self, location: S3Path) -> list[StoredFile]:
        """Every object below the prefix ``location`` (recursively), sorted by key."""
        out = []
        with self._errors("list", location):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=location.prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(location.prefix):]
                    out.append(StoredFile(S3Path(location.bucket, obj["Key"]), relative,
                                          obj["Size"], obj["LastModified"]))
        return sorted(out, key=lambda f: f.location.key)

    def delete(self, locations: list[S3Path]) -> None:
        """Delete objects (absent ones are fine), in batches of 1000 per request.

        Raises:
            StorageError: naming the keys S3 refused to delete.
        """
        by_bucket: dict[str, list[str]] = {}
        for location in locations:
            by_bucket.setdefault(location.bucket, []).append(location.key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start:start + _DELETE_BATCH]
                with self._errors("delete from", S3Path(bucket, batch[0])):
                    answer = self.client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                if answer.get("Errors"):
                    failed = ", ".join(f"{e['Key']} ({e.get('Code')})" for e in answer["Errors"][:5])
                    raise StorageError(f"could not delete from s3://{bucket} with connection "
                                       f"{self.conn_id!r}: {failed}")

    def delete_tree(self, location: S3Path) -> None:
        """Delete every object below the prefix ``location``."""
        self.delete([f.location for f in self.list_files(location)])

    def _check_bucket(self, location: S3Path) -> None:
        if location.bucket in self._buckets_seen:
            return
        with self._errors("check bucket of", location):
            self.client.head_bucket(Bucket=location.bucket)
        self._buckets_seen.add(location.bucket)

    @contextlib.contextmanager
    def _errors(self, action: str, location: S3Path | None) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        where = location.uri if location is not None else "S3"
        try:
            try:
                yield
            except _transfer_error() as exc:  # boto3's upload_file wraps the ClientError
                if isinstance(exc.__context__, ClientError):
                    raise exc.__context__ from None
                raise StorageError(f"cannot {action} {where} with connection {self.conn_id!r}: "
                                   "upload failed") from None
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket" or (code in _NOT_FOUND and action.startswith("check bucket")):
                raise StorageError(
                    f"cannot {action} {where}: bucket {location.bucket!r} does not exist "
                    f"(connection {self.conn_id!r}); create it or fix [dataproducts] data_folder"
                ) from None
            if code in _NOT_FOUND:
                if code != "NoSuchKey":  # a HEAD's bare 404 does not tell key from bucket
                    self._check_bucket(location)
                raise NotFound(where, f"connection {self.conn_id!r}") from None
            if code in _DENIED:
                raise StorageError(
                    f"cannot {action} {where}: access denied ({code}) with connection "
                    f"{self.conn_id!r}; check its credentials and that they may read, write, "
                    "list and delete under the data folder") from None
            raise StorageError(f"cannot {action} {where} with connection {self.conn_id!r}: "
                               f"S3 error {code}") from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot {action} {where} with connection {self.conn_id!r}: "
                               f"{_describe(exc)}") from None


def _transfer_error():
    from boto3.exceptions import S3UploadFailedError

    return S3UploadFailedError


def _client_error():
    from botocore.exceptions import ClientError

    return ClientError


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code") or
               exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))


def _describe(exc) -> str:
    """A botocore error in words, without endpoint URLs or credentials."""
    from botocore.exceptions import (
        ConnectTimeoutError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials (is the connection defined, with login and password or a role?)"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return "the S3 endpoint cannot be reached (check endpoint_url / region in the connection)"
    return type(exc).__name__
