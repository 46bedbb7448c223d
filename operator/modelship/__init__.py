"""modelship: a Kubernetes operator that builds, validates, serves, canaries and scales models."""

__version__ = "0.1.0"
