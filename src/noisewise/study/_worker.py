"""A training worker process of the vectorised executor.

Started by :func:`noisewise.study.vmap_runner.run_many` as
``python -m noisewise.study._worker PARENT_PID``: it reads its pickled units of
work from stdin, trains them, and writes each finished run to stdout as a
pickled ``("run", RunResult)`` frame, then ``("done", None)`` (or
``("error", text)``). A fresh interpreter rather than ``multiprocessing``
spawn, so the user's main script is never imported again (a script without an
``if __name__ == "__main__"`` guard would otherwise start the study anew in
every worker). Anything the libraries print goes to stderr, never into the
frames. The worker stops when the study process is gone.
"""

import os
import pickle
import sys
import traceback


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parent = int(argv[0])
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    sys.stdout = sys.stderr

    def send(kind, value):
        pickle.dump((kind, value), frames, protocol=pickle.HIGHEST_PROTOCOL)
        frames.flush()

    try:
        units = pickle.load(sys.stdin.buffer)
        from noisewise.study import vmap_runner

        for result in vmap_runner._run_units(units):
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
