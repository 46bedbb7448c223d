"""manifests/rbac.yaml grants exactly what the code uses: no more, no less."""

from __future__ import annotations

import collections
from pathlib import Path

import yaml
from modelship import kube

RBAC = Path(__file__).resolve().parents[3] / "manifests" / "rbac.yaml"


def _granted() -> dict[tuple[str, str], set[str]]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole")
    granted: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)].update(rule["verbs"])
    return dict(granted)


def _needed() -> dict[tuple[str, str], set[str]]:
    needed: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for table in (kube.PERMISSIONS, kube.KOPF_PERMISSIONS):
        for key, verbs in table.items():
            needed[key].update(verbs)
    return dict(needed)


def test_cluster_role_matches_the_api_module() -> None:
    assert _granted() == _needed()


def test_no_wildcards() -> None:
    for (group, resource), verbs in _granted().items():
        assert "*" not in (group, resource) and "*" not in verbs
