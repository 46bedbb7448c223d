"""Entry point of the operator process (`modelship-operator`, `python -m modelship`)."""

from __future__ import annotations

import argparse
import sys

from modelship.settings import OperatorSettings


def main(argv: list[str] | None = None) -> int:
    """Run the operator until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="modelship-operator",
        description="Builds, validates and serves ML models declared as ModelDeployments.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable; default: MODELSHIP_NAMESPACES or the whole cluster)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    args = parser.parse_args(argv)
    settings = OperatorSettings.from_env()
    # Importing the handlers registers them; deferred so `--help` stays fast.
    import kopf  # noqa: PLC0415

    import modelship.handlers  # noqa: F401, PLC0415

    kopf.configure(verbose=args.verbose, quiet=args.quiet)
    namespaces = list(args.namespace) or list(settings.namespaces)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
