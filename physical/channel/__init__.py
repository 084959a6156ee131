"""physical.channel.core."""
