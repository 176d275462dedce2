"""A training worker process of the vectorised executor.

Started by :class:`~noisewise.study.execute.VmapExecutor` with
:func:`~noisewise.study.execute.vmap.worker_command` (in effect ``python -m
noisewise.study.execute.worker PARENT_PID [LIFELINE_FD]``): it reads its
pickled units of work from stdin, trains them, and writes each finished run
to stdout as a pickled ``("run", RunResult)`` frame, then ``("done", None)``
(or ``("error", text)``). A fresh interpreter rather than ``multiprocessing``
spawn, so the user's main script is never imported again (a script without
an ``if __name__ == "__main__"`` guard would otherwise start the study anew in
every worker). Anything the libraries print goes to stderr, never into the
frames.

The worker stops when the study process is gone, even in the middle of a
chunk: ``LIFELINE_FD`` is the read end of a pipe whose write end only the
study process holds, so the kernel closes it when that process dies (even by
``SIGKILL``); a thread blocked reading it sees end-of-file and exits the
worker at once. Without it, the worker would train to the end of its chunk
(tens of seconds) before finding no one to send results to. The command
line starts that thread before ``noisewise`` is imported (Keras and JAX take
seconds), so a worker still starting up stops as quickly.
"""

import os
import pickle
import sys
import threading
import traceback

from noisewise.study.execute.vmap import LIFELINE_THREAD, VmapExecutor


def watch_lifeline(fd):
    """Exit this process as soon as the pipe ``fd`` reaches end-of-file."""
    if any(t.name == LIFELINE_THREAD for t in threading.enumerate()):
        return  # the command line's bootstrap watches it already

    def wait():
        try:
            while os.read(fd, 1024):  # the study process never writes: nothing to do
                pass
        except OSError:
            pass
        os._exit(0)  # results go nowhere now; nothing to clean up

    threading.Thread(target=wait, name=LIFELINE_THREAD, daemon=True).start()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parent = int(argv[0])
    if len(argv) > 1:
        watch_lifeline(int(argv[1]))
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    sys.stdout = sys.stderr

    def send(kind, value):
        pickle.dump((kind, value), frames, protocol=pickle.HIGHEST_PROTOCOL)
        frames.flush()

    try:
        units = pickle.load(sys.stdin.buffer)
        for result in VmapExecutor().run_units(units):
            if os.getppid() != parent:  # the study process was killed: stop
                return 0
            send("run", result)
        send("done", None)
    except BrokenPipeError:
        return 0
    except BaseException as e:  # noqa: BLE001 -- reported to the study process, which raises
        try:
            send("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-5)}")
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
