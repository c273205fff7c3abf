"""`python -m idp`: the command line."""

import sys

from idp.cli import main

sys.exit(main())
