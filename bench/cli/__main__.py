"""``python -m promedical.bench.cli ...``: the same as the ``promedical-bench`` console script."""

import sys

from promedical.bench.cli import main

sys.exit(main())
