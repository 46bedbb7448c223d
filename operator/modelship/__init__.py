"""modelship: a Kubernetes operator that builds, validates, serves, canaries and scales ML models."""

__version__ = "0.1.0"
