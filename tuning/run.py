"""``python -m tuning.run``: see :mod:`tuning.cli.run`."""

import sys

from tuning.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
