"""Subcommands of the ``larq-poke`` command line (one module per subcommand)."""
