"""Generation of the ModelDeployment CustomResourceDefinition from the pydantic API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from modelship import api

_DROPPED_KEYS = {"title", "$defs", "discriminator"}


class _FactoryDefaults(GenerateJsonSchema):
    """JSON schema generator that also publishes defaults given by a default_factory."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, api.Model):
                # Complete (the apiserver checks CEL rules on defaults before nested defaulting).
                return value.model_dump(mode="json", by_alias=True, exclude_none=True)
            return value
        return schema.get("default", NoDefault)


def structural_schema(model: type[api.Model]) -> dict[str, Any]:
    """Turn a model's JSON schema into a Kubernetes structural schema."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    defs = raw.get("$defs", {})
    converted: dict[str, Any] = _convert(raw, defs)
    return converted


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # The referring field's own description and default win over the class docstring.
        node = {**target, **node}
    nullable = False
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) < len(node["anyOf"]):
            nullable = True
        if len(branches) == 1:
            del node["anyOf"]
            branch = branches[0]
            if "$ref" in branch:
                branch = {**defs[branch["$ref"].rsplit("/", 1)[-1]]}
            node = {**branch, **node}
        else:
            node["anyOf"] = branches
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, defs) for name, prop in value.items()}
        elif key == "default" and value is None:
            continue
        else:
            out[key] = _convert(value, defs)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema 2020 numbers become OpenAPI v3.0's boolean flag next to the limit.
        if isinstance(out.get(bound), int | float) and not isinstance(out[bound], bool):
            out[limit] = out[bound]
            out[bound] = True
    if out.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out.pop("type", None)
    if nullable and out.get("default") is None:
        out["nullable"] = True
    if "required" in out and not out["required"]:
        del out["required"]
    if out.get("type") == "object" and out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Stable", "type": "string", "jsonPath": ".status.revisions.stable.revision"},
        {"name": "Canary", "type": "string", "jsonPath": ".status.canary.revision"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> dict[str, Any]:
    """Build the whole CustomResourceDefinition object."""
    spec_schema = structural_schema(api.ModelDeploymentSpec)
    status_schema = structural_schema(api.ModelDeploymentStatus)
    root = {
        "type": "object",
        "description": api.ModelDeployment.__doc__,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "REST resource this object represents."},
            # The apiserver owns metadata's schema; only its type may be stated here.
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            api.rule(
                f"size(self.metadata.name) <= {api.MAX_NAME_LENGTH}",
                f"metadata.name must be at most {api.MAX_NAME_LENGTH} characters "
                "(children append suffixes)",
            ),
            api.rule(
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "metadata.name must be a DNS-1035 label (it names the model's Service)",
            ),
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": api.SHORT_NAMES,
                "categories": ["modelship"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """Render the CRD as the YAML committed under crds/."""
    header = "# Generated by `make crds` from operator/modelship/api.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / f"{api.PLURAL}.{api.GROUP}.yaml"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the generated CRD file."""
    parser = argparse.ArgumentParser(prog="python -m modelship.crd", description=__doc__)
    parser.add_argument("--output", type=Path, default=CRD_PATH, help="file to write")
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    fresh = render_crd_yaml()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != fresh:
            print(f"{args.output} is stale: run `make crds`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
