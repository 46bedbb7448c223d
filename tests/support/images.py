"""Image references the tests and the operator agree on (built by hack/images.sh, never pulled)."""

RUNTIME_IMAGE = "docker.io/modelship/runtime:0.1.0"
OPERATOR_IMAGE = "docker.io/modelship/operator:0.1.0"
PAUSE_IMAGE = "docker.io/modelship/pause:0.1.0"
