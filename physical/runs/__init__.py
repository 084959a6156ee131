"""physical.runs."""
