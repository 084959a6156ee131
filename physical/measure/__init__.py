"""physical.measure."""
