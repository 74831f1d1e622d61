"""stepca_cli: the ``step`` command line, compatible with smallstep's step."""
