"""Fixtures of the runtime's integration tests: ONNX models on disk and servers serving them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtime import onnx_models
from tests.integration.runtime.server_process import ServerProcess, served


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_path(model_dir: Path) -> Path:
    return onnx_models.mlp_model(model_dir / "mlp.onnx")


@pytest.fixture(scope="session")
def identity_path(model_dir: Path) -> Path:
    return onnx_models.identity_model(model_dir / "identity.onnx")


@pytest.fixture(scope="session")
def two_input_path(model_dir: Path) -> Path:
    return onnx_models.two_input_model(model_dir / "two_input.onnx")


@pytest.fixture(scope="session")
def regressor_path(model_dir: Path) -> Path:
    return onnx_models.regressor_model(model_dir / "regressor.onnx")


@pytest.fixture(scope="module")
def mlp_server(mlp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(
        mlp_path, "mlp", tmp_path_factory.mktemp("logs"), "--max-body-bytes", "65536"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def identity_server(
    identity_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(identity_path, "types", tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture(scope="module")
def two_input_server(
    two_input_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(
        two_input_path, "pair", tmp_path_factory.mktemp("logs"), "--version", "3",
        "--execution", "thread",
    ) as server:  # fmt: skip
        yield server
