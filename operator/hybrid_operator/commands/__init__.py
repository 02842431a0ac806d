"""Sub-commands of the ``hybrid-scheduler`` command line, one module each."""
