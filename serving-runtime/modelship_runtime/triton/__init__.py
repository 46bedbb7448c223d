"""NVIDIA Triton support: model repository rendering and readiness checks through tritonclient."""
