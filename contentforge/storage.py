"""Where originals and outputs live: one small interface, two real implementations.

``open_storage(url)`` picks the backend from the URL:

- ``file:///abs/dir`` — a local directory (the default for embedded runs);
- ``s3://bucket/prefix?endpoint_url=http://host:9000&region=us-east-1`` — AWS S3 or any
  S3-compatible store (MinIO, Cloudflare R2, Supabase Storage's S3 endpoint) through boto3, with
  credentials from the usual ``AWS_*`` environment variables or instance roles.

Keys are ``/``-separated relative paths (``{tenant}/{asset}/attempts/{token}/variants/thumb_320.webp``) and are
validated: no empty parts, no ``.`` or ``..``, no leading ``/``, no backslashes or control
characters. A missing object raises :class:`StorageKeyMissing`; a failure of the store itself
(unreachable, throttled, 5xx, disk full) raises :class:`StorageUnavailable`, a ``TransientError``
(``contentforge.errors``). This module imports only the standard library, boto3 and
``contentforge.errors``.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from contentforge.errors import PermanentError, TransientError


class StorageError(Exception):
    """Base of the storage errors."""


class StorageUnavailable(StorageError, TransientError):
    """The store failed (network, credentials, throttling, server error, disk): retry later."""


class StorageKeyMissing(StorageError, PermanentError):
    """No object under this key."""


class InvalidKey(StorageError, ValueError):
    """A key that could escape its prefix or is not a plain relative path."""


def validate_key(key: str, *, allow_empty: bool = False) -> str:
    """Return ``key`` when it is a safe relative object key, else raise :class:`InvalidKey`."""
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a string, got {type(key).__name__}")
    if key == "" and allow_empty:
        return key
    if not key or len(key) > 1024:
        raise InvalidKey("key must be 1 to 1024 characters")
    if key.startswith("/") or "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey(f"key {key!r} must be a relative path without backslashes or controls")
    parts = key.rstrip("/").split("/") if allow_empty else key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"key {key!r} has an empty, '.' or '..' part")
    return key


@dataclass(frozen=True)
class StoredObject:
    """One stored object as a listing sees it."""

    key: str
    #: When the object was last written, by the store's clock (file mtime; S3 LastModified), UTC.
    modified: datetime


class Storage(ABC):
    """Put, get, delete and list objects by key."""

    url: str

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Store the file at ``path`` under ``key``, replacing what was there."""

    @abstractmethod
    def get_file(self, key: str, dest_path: Path) -> None:
        """Write the object ``key`` to ``dest_path`` (created or replaced)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix/``; return how many. An empty prefix
        is refused (:class:`InvalidKey`)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix/`` (every key when empty), sorted."""
        return [o.key for o in self.list_objects(prefix)]

    @abstractmethod
    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        """Objects under ``prefix/`` (every object when empty) with their write times, by key."""


def _delete_prefix_of(prefix: str) -> str:
    """The prefix a delete_prefix may use: never empty (that would delete every object)."""
    if not prefix.strip("/"):
        raise InvalidKey(f"delete_prefix needs a non-empty prefix, got {prefix!r}: "
                         "an empty one would delete every object in the store")
    return prefix


def _prefix_of(prefix: str) -> str:
    validate_key(prefix, allow_empty=True)
    return prefix.rstrip("/") + "/" if prefix else ""


class LocalStorage(Storage):
    """Objects as files below one directory. Writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create storage directory {self.root}: {exc}") from exc

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink planted inside the root
            raise InvalidKey(f"key {key!r} resolves outside the storage directory")
        return path

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc}") from exc

    def get_file(self, key: str, dest_path: Path) -> None:
        src = self._path(key)
        try:
            shutil.copyfile(src, dest_path)
        except FileNotFoundError as exc:
            if not src.is_file():
                raise StorageKeyMissing(key) from exc
            raise
        except IsADirectoryError as exc:
            raise StorageKeyMissing(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except IsADirectoryError:
            pass
        except OSError as exc:
            if exc.errno != errno.EISDIR:
                raise StorageUnavailable(f"cannot delete {key}: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(_delete_prefix_of(prefix))
        for key in keys:
            self.delete(key)
        if prefix:
            folder = self.root / prefix.rstrip("/")
            if folder.is_dir() and folder.resolve().is_relative_to(self.root):
                shutil.rmtree(folder, ignore_errors=True)
        return len(keys)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        base = _prefix_of(prefix)
        folder = self.root / base if base else self.root
        if not folder.is_dir():
            return []
        found = []
        for dirpath, _dirnames, filenames in os.walk(folder):
            for filename in filenames:
                if filename.startswith(".upload-"):
                    continue
                path = Path(dirpath, filename)
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:  # deleted while we walked
                    continue
                found.append(StoredObject(path.relative_to(self.root).as_posix(),
                                          datetime.fromtimestamp(mtime, UTC)))
        return sorted(found, key=lambda o: o.key)


class S3Storage(Storage):
    """Objects in one bucket under an optional key prefix, through boto3."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, client: object | None = None) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise ValueError("an s3:// storage URL needs a bucket name")
        self.bucket = bucket
        self.prefix = _prefix_of(prefix.strip("/"))
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client: Any = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, what: str, key: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except Boto3Error as exc:  # S3UploadFailedError wraps the ClientError as text
            raise StorageUnavailable(f"S3 {what} of {key!r} failed: {exc}") from exc
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise StorageKeyMissing(key) from exc
            raise StorageUnavailable(
                f"S3 {what} of {key!r} failed: {code or status} {err.get('Message', '')}".strip()
            ) from exc
        except BotoCoreError as exc:  # connection refused, timeouts, missing credentials
            raise StorageUnavailable(f"S3 {what} of {key!r} failed: {exc}") from exc

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self._call("upload", key, self._client.upload_file, str(path), self.bucket,
                   self._key(key), ExtraArgs=extra)

    def get_file(self, key: str, dest_path: Path) -> None:
        dest = Path(dest_path)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
        os.close(fd)
        try:
            self._call("download", key, self._client.download_file, self.bucket,
                       self._key(key), tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def delete(self, key: str) -> None:
        self._call("delete", key, self._client.delete_object, Bucket=self.bucket,
                   Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(_delete_prefix_of(prefix))
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": self.prefix + k} for k in keys[start:start + 1000]]
            result = self._call("delete", prefix, self._client.delete_objects,
                                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if result.get("Errors"):
                first = result["Errors"][0]
                raise StorageUnavailable(
                    f"S3 delete of {first.get('Key')!r} failed: {first.get('Code')}"
                )
        return len(keys)

    def exists(self, key: str) -> bool:
        try:
            self._call("head", key, self._client.head_object, Bucket=self.bucket,
                       Key=self._key(key))
        except StorageKeyMissing:
            return False
        return True

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        full = self.prefix + _prefix_of(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        found: list[StoredObject] = []
        pages = self._call("list", prefix, lambda: list(
            paginator.paginate(Bucket=self.bucket, Prefix=full)))
        for page in pages:
            found += [StoredObject(obj["Key"][len(self.prefix):], obj["LastModified"].astimezone(UTC))
                      for obj in page.get("Contents", [])]
        return sorted(found, key=lambda o: o.key)


def open_storage(url: str) -> Storage:
    """The storage named by ``url`` (``file:///abs/dir`` or ``s3://bucket/prefix?...``)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file storage URL must be file:///absolute/path, got {url!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"file storage URL needs an absolute path, got {url!r}")
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ValueError(f"unknown s3 storage option(s): {', '.join(sorted(unknown))}")
        return S3Storage(parts.netloc, unquote(parts.path).strip("/"),
                         endpoint_url=query.get("endpoint_url"), region=query.get("region"))
    raise ValueError(f"unsupported storage URL {url!r}: use file:///dir or s3://bucket/prefix")
