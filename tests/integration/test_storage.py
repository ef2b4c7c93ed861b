"""The storage interface against a local directory and a real S3-compatible server on loopback."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from contentforge.storage import (
    InvalidKey,
    LocalStorage,
    S3Storage,
    Storage,
    StorageKeyMissing,
    StorageUnavailable,
    open_storage,
)
from tests.integration.conftest import free_port


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A small file to store."""
    path = tmp_path / "sample.bin"
    path.write_bytes(b"hello storage\x00\x01" * 100)
    return path


def test_put_get_roundtrip(storage: Storage, sample: Path, tmp_path: Path) -> None:
    """A stored file comes back byte for byte."""
    storage.put_file("t1/a1/original", sample, "application/octet-stream")
    dest = tmp_path / "back.bin"
    storage.get_file("t1/a1/original", dest)
    assert dest.read_bytes() == sample.read_bytes()


def test_put_overwrites(storage: Storage, sample: Path, tmp_path: Path) -> None:
    """Putting the same key twice keeps one object with the latest content."""
    other = tmp_path / "other.bin"
    other.write_bytes(b"second")
    storage.put_file("t1/a1/variants/thumb_320.webp", sample, "image/webp")
    storage.put_file("t1/a1/variants/thumb_320.webp", other, "image/webp")
    assert storage.list("t1/a1") == ["t1/a1/variants/thumb_320.webp"]
    dest = tmp_path / "x"
    storage.get_file("t1/a1/variants/thumb_320.webp", dest)
    assert dest.read_bytes() == b"second"


def test_exists_and_delete(storage: Storage, sample: Path) -> None:
    """exists follows put and delete; deleting a missing key is fine."""
    assert not storage.exists("t1/a2/original")
    storage.put_file("t1/a2/original", sample)
    assert storage.exists("t1/a2/original")
    storage.delete("t1/a2/original")
    storage.delete("t1/a2/original")
    assert not storage.exists("t1/a2/original")


def test_missing_key(storage: Storage, tmp_path: Path) -> None:
    """Reading a key that was never written raises StorageKeyMissing."""
    with pytest.raises(StorageKeyMissing):
        storage.get_file("t9/nothing/here", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_list_and_delete_prefix(storage: Storage, sample: Path) -> None:
    """delete_prefix removes exactly the keys under one asset and says how many."""
    for key in ("t1/a1/original", "t1/a1/variants/x.jpg", "t1/a10/original", "t2/a1/original"):
        storage.put_file(key, sample)
    assert storage.list("t1/a1") == ["t1/a1/original", "t1/a1/variants/x.jpg"]
    assert storage.delete_prefix("t1/a1") == 2
    assert storage.list() == ["t1/a10/original", "t2/a1/original"]


@pytest.mark.parametrize("prefix", ["", "/", "//"])
def test_delete_prefix_refuses_an_empty_prefix(storage: Storage, sample: Path, prefix: str) -> None:
    """delete_prefix with an empty prefix is refused and deletes nothing (it meant the whole store)."""
    storage.put_file("t1/a.bin", sample)
    storage.put_file("t2/b.bin", sample)
    with pytest.raises(InvalidKey, match="non-empty prefix"):
        storage.delete_prefix(prefix)
    assert storage.list() == ["t1/a.bin", "t2/b.bin"]


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "a/../../b", "a//b", "a/./b", "",
                                 "a\\b", "a\nb"])
def test_bad_keys_refused(storage: Storage, sample: Path, key: str) -> None:
    """Keys that could escape their prefix are refused before any I/O."""
    with pytest.raises(InvalidKey):
        storage.put_file(key, sample)


def test_content_type_stored_on_s3(s3_endpoint: str, aws_env: None, sample: Path) -> None:
    """The S3 backend records the content type given to put_file."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="ctype")
    store = open_storage(f"s3://ctype?endpoint_url={s3_endpoint}")
    assert isinstance(store, S3Storage)
    store.put_file("t/a/poster_320.webp", sample, "image/webp")
    head = client.head_object(Bucket="ctype", Key="t/a/poster_320.webp")
    assert head["ContentType"] == "image/webp"


def test_s3_outage_is_unavailable(aws_env: None, sample: Path) -> None:
    """An S3 endpoint nobody listens on raises StorageUnavailable, not a botocore error."""
    store = open_storage(f"s3://b/p?endpoint_url=http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageUnavailable):
        store.put_file("t/a/original", sample)
    with pytest.raises(StorageUnavailable):
        store.exists("t/a/original")


def test_s3_missing_bucket_is_unavailable(s3_endpoint: str, aws_env: None, sample: Path) -> None:
    """A bucket that does not exist is a store problem (StorageUnavailable), not a missing key."""
    store = open_storage(f"s3://no-such-bucket?endpoint_url={s3_endpoint}")
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        store.put_file("t/a/original", sample)


def test_local_url_parsing(tmp_path: Path) -> None:
    """file:/// URLs open a LocalStorage; relative paths and unknown schemes are refused."""
    assert isinstance(open_storage((tmp_path / "s").as_uri()), LocalStorage)
    with pytest.raises(ValueError):
        open_storage("file://host/dir")
    with pytest.raises(ValueError):
        open_storage("ftp://x/y")


def test_local_symlink_escape_refused(tmp_path: Path, sample: Path) -> None:
    """A symlink planted inside the local root cannot be used to write outside it."""
    store = LocalStorage(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "t").symlink_to(outside)
    with pytest.raises(InvalidKey):
        store.put_file("t/evil", sample)
    assert not (outside / "evil").exists()
