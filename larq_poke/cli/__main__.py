"""``python -m larq_poke.cli``: the ``larq-poke`` command."""

import sys

from larq_poke.cli import main

sys.exit(main())
