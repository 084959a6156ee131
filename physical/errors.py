"""Errors the user can fix: the command line prints their message on one line and exits with 2."""


class UserError(Exception):
    """Something the user can fix (a bad value, a missing file, a device that is not here): the command
    line prints its message on one line and exits with 2."""


class ConfigError(UserError, ValueError):
    """A bad value in the configuration; the message starts with the key's full path."""
