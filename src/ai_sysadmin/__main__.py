"""``python -m ai_sysadmin``: the ``ai-sysadmin`` command, where the venv's bin is not on the
PATH (or a script is not installed)."""

import sys

from .cli.dispatch import PROGRAM
from .cli.main import main

sys.exit(main(argv0=PROGRAM))
