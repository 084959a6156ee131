"""physical.sim."""
