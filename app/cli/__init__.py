"""The command line: ``zooscope`` and its subcommands, ``zooscope analyze``, and the server launcher."""
