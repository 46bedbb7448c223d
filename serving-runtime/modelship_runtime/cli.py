"""Command line of the runtime image: `modelship-runtime serve` and `modelship-runtime build`."""

import sys


def main() -> int:
    print("modelship-runtime: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
