"""``python -m actionlab.cli``: the ``actionlab`` command without its console script."""

import sys

from actionlab.cli.main import main

sys.exit(main())
