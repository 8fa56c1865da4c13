"""`python -m gateway` is `sluicegate`."""

import sys

from gateway.cli import main

sys.exit(main())
