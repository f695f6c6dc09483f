"""The one exception type the command line turns into a single clear error line."""


class GMLError(Exception):
    """An error in the user's input (file, row, column, key or value) with a clear message.

    The ``gml`` command prints ``gml: error: <message>`` and exits with status 2, no traceback
    (set ``GML_DEBUG=1`` or pass ``--debug`` to see it).
    """


class GMLWarning(UserWarning):
    """Input that gml can use but that may not give a meaningful score (a low sample rate, a
    coded file much longer or shorter than its reference). The ``gml`` command prints it as
    ``gml: warning: <message>``."""
