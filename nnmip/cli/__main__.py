"""``python -m nnmip.cli``."""

import sys

from nnmip.cli import main

sys.exit(main())
