"""The ``skiff`` command: one module per subcommand, no business logic here."""
