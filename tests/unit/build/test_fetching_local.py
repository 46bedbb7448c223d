"""Fetching from local paths: streamed copy, digest check, atomic appearance, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelship_runtime.build.artifacts import build_base
from modelship_runtime.build.errors import FetchError
from modelship_runtime.build.fetching import RetryPolicy, fetch_file, sha256_of


def test_copy_and_verify(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"x" * (3 << 20))
    fetched = fetch_file(source.as_uri(), tmp_path / "out", sha256=sha256_of(source))
    assert fetched.path.read_bytes() == source.read_bytes() and fetched.size == 3 << 20
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx"]


def test_mismatch_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"abc")
    with pytest.raises(FetchError, match=r"sha256 mismatch: expected 0{64}, got ba7816bf"):
        fetch_file(str(source), tmp_path / "out", sha256="0" * 64)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("ftp://host/model.onnx", "unsupported URI scheme 'ftp'"),
        ("file://otherhost/model.onnx", "must not name a host"),
        ("/definitely/not/here.onnx", "no such file"),
    ],
)
def test_errors(tmp_path: Path, uri: str, needle: str) -> None:
    with pytest.raises(FetchError, match=needle):
        fetch_file(uri, tmp_path, policy=RetryPolicy(attempts=1))


def test_retry_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_FETCH_ATTEMPTS", "7")
    monkeypatch.setenv("MODELSHIP_FETCH_TIMEOUT", "2.5")
    policy = RetryPolicy.from_env()
    assert policy.attempts == 7 and policy.timeout == 2.5
    monkeypatch.setenv("MODELSHIP_FETCH_ATTEMPTS", "many")
    with pytest.raises(FetchError, match="MODELSHIP_FETCH_ATTEMPTS='many' is not a number"):
        RetryPolicy.from_env()


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        ("s3://b/builds/v1/", "s3://b/builds/v1/"),
        ("s3://b/builds/v1", "s3://b/builds/v1/"),
        ("s3://b/builds/v1/manifest.json", "s3://b/builds/v1/"),
        ("s3://b/models/model.onnx", None),
        ("https://h/x/model.onnx", None),
    ],
)
def test_build_base(uri: str, base: str | None) -> None:
    assert build_base(uri) == base
