"""The ``aq`` command line."""
