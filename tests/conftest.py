"""Fixtures shared by every tier: the real cluster, its API client and a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.support import cluster as cluster_support
from tests.support import installed_operators
from tests.support.diagnostics import describe_namespace
from tests.support.waiting import wait_until


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    # Keeps each phase's report on the test item so fixtures can tell a failed test.
    report: pytest.TestReport = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[cluster_support.Cluster]:
    """The cluster, with any operator installed in it set aside until the suite ends."""
    acquired = cluster_support.acquire()
    try:
        admin = config.new_client_from_config(config_file=acquired.kubeconfig)
        try:
            aside = installed_operators.set_aside(admin)
            _report(request, installed_operators.describe(aside))
            try:
                yield acquired
            finally:
                installed_operators.restore(admin, aside)
        finally:
            admin.close()
    finally:
        cluster_support.release(acquired)


def _report(request: pytest.FixtureRequest, line: str) -> None:
    # Straight to the terminal: what the suite did to a cluster it found must be visible.
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(f"[cluster] {line}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[cluster] {line}")


@pytest.fixture(scope="session")
def api_client(cluster: cluster_support.Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, named after the test, deleted afterwards."""
    core = client.CoreV1Api(api_client)
    stem = request.node.name.lower().replace("_", "-")
    stem = "".join(ch for ch in stem if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # The ServiceAccount controller creates `default`; pods cannot be created before it exists.
    wait_until(
        lambda: core.list_namespaced_service_account(name).items,
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(describe_namespace(api_client, name))
        core.delete_namespace(name)
