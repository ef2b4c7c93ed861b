"""Errors the CLI turns into a readable message and a meaningful exit code."""


class ContentforgeError(Exception):
    """Base of contentforge's own errors. ``str(error)`` is meant for a person."""

    exit_code = 1


class ConfigurationError(ContentforgeError):
    exit_code = 2


class DatabaseUnavailable(ContentforgeError):
    """PostgreSQL could not be reached or refused the connection."""

    exit_code = 3


class BrokerUnavailable(ContentforgeError):
    """Redis could not be reached."""

    exit_code = 3
