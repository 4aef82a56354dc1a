"""Storage URIs: local paths and s3:// through a real S3 endpoint (moto) on 127.0.0.1."""

from __future__ import annotations

import boto3
import numpy as np
import pyarrow.fs as pafs
import pytest

from raytag.io import read_participant, storage
from raytag.io.ukb_writer import SeriesSpec, participant_zip

EID = 9000002


def test_resolve_local_and_file_uri(tmp_path):
    sp = storage.resolve(tmp_path / "a.zip")
    assert isinstance(sp.filesystem, pafs.LocalFileSystem)
    assert sp.path == str(tmp_path / "a.zip")
    assert storage.resolve(f"file://{tmp_path}/a.zip").path == str(tmp_path / "a.zip")


def test_resolve_rejects_unknown_scheme_and_bucketless_s3():
    with pytest.raises(storage.StorageError, match="unsupported storage scheme 'gs'"):
        storage.resolve("gs://bucket/key")
    with pytest.raises(storage.StorageError, match="needs a bucket"):
        storage.resolve("s3://")


def test_endpoint_comes_from_standard_aws_variables(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999")
    assert storage._s3_endpoint_from_env() == ("127.0.0.1:9999", "http")
    # The S3-specific variable wins over the generic one, as in the AWS SDKs.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://minio.example:9000")
    assert storage._s3_endpoint_from_env() == ("minio.example:9000", "https")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert storage._s3_endpoint_from_env() == (None, None)


def test_local_write_read_list(tmp_path):
    storage.write_bytes(tmp_path / "x" / "b.zip", b"two")
    storage.write_bytes(tmp_path / "x" / "a.zip", b"one")
    storage.write_bytes(tmp_path / "x" / "notes.txt", b"")
    assert storage.read_bytes(tmp_path / "x" / "a.zip") == b"one"
    assert storage.list_files(tmp_path / "x", ".zip") == [
        str(tmp_path / "x" / "a.zip"),
        str(tmp_path / "x" / "b.zip"),
    ]
    with pytest.raises(storage.StorageError, match="exceeds the limit of 2"):
        storage.read_bytes(tmp_path / "x" / "a.zip", max_bytes=2)
    with pytest.raises(storage.StorageError, match="no such file"):
        storage.read_bytes(tmp_path / "nope.zip")
    with pytest.raises(storage.StorageError, match="not a file"):
        storage.read_bytes(tmp_path / "x")


def _records_equal(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for field in ("eid", "instance", "slice_index", "status", "error", "qc_flags", "n_frames",
                      "series_uid", "n_candidate_series", "slice_position_mm"):
            assert getattr(ra, field) == getattr(rb, field), field
        for field in ("frames", "frame_valid", "trigger_time_ms", "pixel_spacing_mm"):
            np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))


def test_s3_read_gives_identical_records(s3_endpoint, s3_bucket, tmp_path):
    rng = np.random.default_rng(1)
    specs = [SeriesSpec(i, rng.integers(0, 144, (20, 256, 174)).astype(np.uint16),
                        position_mm=-15.0 * i) for i in (1, 2, 3)]
    name, data = participant_zip(EID, specs)
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=s3_bucket, Key=f"cohort/{name}", Body=data)
    storage.write_bytes(tmp_path / name, data)

    from_s3 = read_participant(f"s3://{s3_bucket}/cohort/{name}")
    from_local = read_participant(tmp_path / name)
    from_bytes = read_participant((name, data))
    assert [r.status for r in from_s3] == ["ok", "ok", "ok"]
    _records_equal(from_s3, from_bytes)
    _records_equal(from_local, from_bytes)
    assert from_s3[0].source_uri == f"s3://{s3_bucket}/cohort/{name}"


def test_s3_write_list_and_missing_object(s3_endpoint, s3_bucket):
    storage.write_bytes(f"s3://{s3_bucket}/p/9000003_20211_2_0.zip", b"PK")
    storage.write_bytes(f"s3://{s3_bucket}/p/sub/9000004_20211_2_0.zip", b"PK")
    storage.write_bytes(f"s3://{s3_bucket}/p/readme.txt", b"")
    assert storage.list_files(f"s3://{s3_bucket}/p", ".zip") == [
        f"s3://{s3_bucket}/p/9000003_20211_2_0.zip",
        f"s3://{s3_bucket}/p/sub/9000004_20211_2_0.zip",
    ]
    recs = read_participant(f"s3://{s3_bucket}/p/9000099_20211_2_0.zip")
    assert recs[0].status == "failed" and "no such file" in recs[0].error
    assert recs[0].eid == "9000099"
    recs = read_participant(f"s3://{s3_bucket}/p/9000003_20211_2_0.zip")
    assert recs[0].status == "failed" and "truncated or corrupt zip" in recs[0].error
