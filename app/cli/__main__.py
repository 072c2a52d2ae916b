"""``python -m app.cli``: the ``zooscope`` command line, without the installed script."""

import sys

from app.cli.main import main

sys.exit(main())
