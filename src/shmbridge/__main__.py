"""``python -m shmbridge``: the same as the ``shmbridge`` command."""

import sys

from .cli import main

sys.exit(main())
