"""``python -m nnmip.cli``."""

import sys

try:
    from nnmip.cli import main
except KeyboardInterrupt:   # Ctrl-C while the modules load: nothing has been done yet
    sys.stderr.write("interrupted\n")
    sys.exit(130)

sys.exit(main())
