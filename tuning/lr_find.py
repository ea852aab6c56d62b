"""``python -m tuning.lr_find``: see :mod:`tuning.cli.lr_find`."""

import sys

from tuning.cli.lr_find import main

if __name__ == "__main__":
    sys.exit(main())
