"""`python -m harness.cli`: the same as the `harness` script."""

import sys

from harness.cli.main import main

sys.exit(main())
