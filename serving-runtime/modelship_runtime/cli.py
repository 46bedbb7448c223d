"""Command line of the runtime image: dispatches `serve`, `build`, `fetch`, `publish` to modules."""

from __future__ import annotations

import importlib
import sys

# Each subcommand lives in the module that owns the concern; importing lazily keeps
# `serve` from paying for the converters and `build` from paying for the server.
SUBCOMMANDS = {
    "serve": ("modelship_runtime.server.cli", "Serve a model over the Open Inference Protocol."),
    "build": ("modelship_runtime.build.cli", "Fetch, convert, optimize, validate, publish."),
    "fetch": ("modelship_runtime.build.fetch_cli", "Download a model or artifact to a directory."),
    "publish": ("modelship_runtime.build.publish_cli", "Publish a finished build to the store."),
}


def _usage() -> str:
    lines = ["usage: modelship-runtime {serve,build,fetch,publish} [options]", ""]
    lines += [f"  {name:<8}{help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"modelship-runtime: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
