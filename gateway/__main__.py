"""`python -m gateway` is `sluicegate` (through gateway.launch: signal handlers before the heavy imports)."""

import sys

from gateway.launch import main

sys.exit(main())
