"""`python -m cli` runs the `contentforge` command."""

import sys

from cli.main import main

sys.exit(main())
