"""Every ModelDeployment a user can copy (README, docs/, examples/) is accepted by the real
apiserver: a server-side dry run with strict field validation, so a doc example cannot rot."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from modelship import api

from .conftest import REPO, Models

pytestmark = pytest.mark.integration

_FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    texts = [
        (p, p.read_text()) for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    ]
    blocks = [(p, m.group(1)) for p, text in texts for m in _FENCE.finditer(text)]
    blocks += [(p, p.read_text()) for p in sorted((REPO / "examples").glob("*.yaml"))]
    for path, block in blocks:
        for i, doc in enumerate(yaml.safe_load_all(block)):
            if isinstance(doc, dict) and doc.get("kind") == api.KIND:
                found.append((f"{path.relative_to(REPO)}#{i}", doc))
    return found


DOCUMENTS = _documents()


def test_the_docs_hold_examples() -> None:
    # Guards the collector itself: a changed fence or path must not silently test nothing.
    sources = {name.split("#")[0] for name, _ in DOCUMENTS}
    assert {"README.md", "docs/api.md", "examples/sklearn-iris.yaml"} <= sources


@pytest.mark.parametrize(("source", "doc"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_example_is_accepted_by_the_crd(models: Models, source: str, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == f"{api.GROUP}/{api.VERSION}", source
    # Examples name their own namespace (or none); the dry run lands in the test's namespace.
    models.create(doc["metadata"]["name"], doc["spec"], dry_run=True)
