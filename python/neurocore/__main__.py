"""``python -m neurocore``: run the command-line interface (see :mod:`neurocore.cli`)."""

from neurocore.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
