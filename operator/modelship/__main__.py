"""Entry point of the operator process (`modelship-operator`, `python -m modelship`)."""

import sys


def main() -> int:
    print("modelship-operator: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
