"""`python -m simulator`: the same command as `shipguard simulate`."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
