"""kind-config.yaml decodes strictly into kind's own v1alpha4 types (hack/kind-check).

No Docker daemon runs here, so the kind cluster itself is never created; this is the only
check its config gets. The checker is built by hack/build-go-tool.sh kind-check when missing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import go_tools

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "kind-config.yaml"


@pytest.fixture(scope="module")
def kind_check() -> Path:
    """The cached checker, built through the hack script (a no-op when cached)."""
    path, errors = go_tools.build("kind-check")
    if path is None:
        pytest.fail(
            "hack/build-go-tool.sh kind-check could not build the kind config checker; it needs "
            f"Go and the Go module proxy.\n{errors}",
            pytrace=False,
        )
    return path


def run(checker: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checker), str(config)], capture_output=True, text=True, timeout=60, check=False
    )


def test_kind_config_is_valid_for_kind(kind_check: Path) -> None:
    result = run(kind_check, CONFIG)
    assert result.returncode == 0, result.stderr
    assert "2 nodes: control-plane(" in result.stdout


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        pytest.param("extraMounts:", "extraMount:", id="node-field"),
        pytest.param("containerPath:", "containerpath:", id="mount-field"),
        pytest.param("\nname: modelship", "\nnmae: modelship", id="top-level-field"),
    ],
)
def test_misspelled_field_is_refused_by_name(
    kind_check: Path, tmp_path: Path, good: str, bad: str
) -> None:
    text = CONFIG.read_text()
    assert good in text, f"{good!r} is no longer in kind-config.yaml: update this test"
    broken = tmp_path / "kind-config.yaml"
    broken.write_text(text.replace(good, bad, 1))
    result = run(kind_check, broken)
    assert result.returncode != 0, result.stdout
    field = bad.strip().rstrip(":").split(":")[0]
    assert f"field {field} not found" in result.stderr, result.stderr


def test_unknown_role_is_refused(kind_check: Path, tmp_path: Path) -> None:
    broken = tmp_path / "kind-config.yaml"
    broken.write_text(CONFIG.read_text().replace("role: worker", "role: wroker", 1))
    result = run(kind_check, broken)
    assert result.returncode != 0
    assert '"wroker"' in result.stderr, result.stderr


def test_nodes_run_the_local_clusters_kubernetes_minor() -> None:
    versions = subprocess.run(
        ["bash", "-c", 'source hack/versions.sh && printf %s "$K8S_VERSION"'],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    minor = re.match(r"^v1\.(\d+)\.", versions)
    assert minor, versions
    config = yaml.safe_load(CONFIG.read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker"]
    for node in config["nodes"]:
        image = node["image"]
        assert re.match(rf"^kindest/node:v1\.{minor[1]}\.\d+@sha256:[0-9a-f]{{64}}$", image), (
            f"{node['role']} image {image} is not a digest-pinned kindest/node "
            f"of v1.{minor[1]} (hack/versions.sh K8S_VERSION={versions})"
        )
