"""``python -m gnomon.cli``: the ``gnomon`` command, without the installed script."""

from gnomon.cli import main

main()
