"""physical.stages."""
