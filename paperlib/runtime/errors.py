"""The one base of the errors paperlib raises about what it was given."""


class PaperlibError(Exception):
    """Something wrong with an input (a file, a setting, a model, a track), named in a one-line message.

    The command line prints it as `paperlib <command>: error: <message>` with exit status 2, never a traceback; a
    stage records it as the status of the track it concerns. Subclasses also derive from the builtin error they
    refine (ValueError, RuntimeError)."""
