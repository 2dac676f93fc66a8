"""Errors a user can act on. The CLI and UI show their message, never a traceback."""


class WardenError(Exception):
    """A user-facing error: bad input, a missing object, a refused action."""


class NotFound(WardenError):
    pass


class Conflict(WardenError):
    """The action conflicts with current state (lease lost, item already decided, ...)."""


class PermissionDenied(WardenError):
    pass
