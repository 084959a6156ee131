"""physical.cli.main."""
