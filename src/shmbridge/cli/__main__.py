"""``python -m shmbridge.cli``: the same as the ``shmbridge`` command."""

import sys

from . import main

sys.exit(main())
