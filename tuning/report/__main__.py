"""``python -m tuning.report STUDY.yaml``: see :mod:`tuning.report.html`."""

import sys

from tuning.report.html import main

sys.exit(main())
