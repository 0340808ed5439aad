"""``python -m pyimg``: the same command line as the ``pyimg`` script."""

from pyimg.cli import main

raise SystemExit(main())
