"""`python -m credd` is `credd` (the service units run it this way)."""

import sys

from credd.cli import main

sys.exit(main())
