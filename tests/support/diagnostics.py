"""What a failed cluster test prints: pods, container states and events of its namespace."""

from __future__ import annotations

from kubernetes import client


def describe_namespace(api_client: client.ApiClient, namespace: str) -> str:
    """A compact, human-readable account of a namespace, for failure output."""
    core = client.CoreV1Api(api_client)
    lines = [f"--- namespace {namespace} ---"]
    for pod in core.list_namespaced_pod(namespace).items:
        lines.append(f"pod {pod.metadata.name}: phase={pod.status.phase}")
        for status in pod.status.container_statuses or []:
            state = status.state
            detail = (
                f"waiting {state.waiting.reason}: {state.waiting.message}"
                if state.waiting
                else f"terminated {state.terminated.reason} exit={state.terminated.exit_code}"
                if state.terminated
                else "running"
            )
            lines.append(f"  {status.name}: ready={status.ready} {detail}")
    events = sorted(
        core.list_namespaced_event(namespace).items,
        key=lambda e: str(e.last_timestamp or e.event_time or ""),
    )
    for event in events[-30:]:
        obj = event.involved_object
        lines.append(f"event {obj.kind}/{obj.name} {event.type} {event.reason}: {event.message}")
    return "\n".join(lines)
