"""``python -m tuning.predict``: see :mod:`tuning.cli.predict`."""

import sys

from tuning.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
