"""`python -m paperlib.cli`: the `paperlib` command."""

import sys

from paperlib.cli import main

sys.exit(main())
