"""``python -m scratchlab`` (what ``torchrun -m scratchlab train ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
