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


class Interrupted(SystemExit):
    """A command stopped by a signal (SIGINT from Ctrl-C, SIGTERM from a scheduler).

    It is a :class:`SystemExit` with status ``128 + signal`` (130 for SIGINT, 143 for SIGTERM),
    the status a shell reports for a command killed by that signal, so that a script or a
    scheduler does not read success. The ``gml`` command prints one line for it
    (``gml: interrupted at epoch E step S; resume with: ...``).

    Attributes:
        signum: The signal.
        epoch: The epoch of the ``last.ckpt`` a resumed run continues from (None: none).
        step: Its global step (None: none).
        folder: The run folder holding that ``last.ckpt`` (None: nothing to resume).
        resume: The command that continues the work, when the command line knows it.
    """

    def __init__(
        self,
        signum: int,
        epoch: int | None = None,
        step: int | None = None,
        folder=None,
    ):
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.epoch = epoch
        self.step = step
        self.folder = folder
        self.resume: str | None = None
