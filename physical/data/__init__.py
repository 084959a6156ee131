"""physical.data."""
