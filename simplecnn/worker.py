"""The training process behind a `TrainingJob`: `python -m simplecnn.worker`, driven over stdin/stdout.

The process lowers its own scheduling priority (`SIMPLECNN_TRAINING_NICE`, default 10): on a
shared server a learner's drawing or page should answer first, and training takes what is left.
The parent sends one message, (config dict, dataset name, run directory, seconds between saves),
then maybe "stop"; the child continues the run from its saved state, reports batches, weights and
epochs, and saves the run's files as it goes (see `simplecnn.jobs.train_in_child`). End of file on
stdin (the web server went away, even by SIGKILL) stops it too, after one last save.
"""
from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection

NICE_ENV = "SIMPLECNN_TRAINING_NICE"  # niceness added to the training process (default 10; 0 = none)


def lower_priority() -> int:
    """Be nice to the web server and its users; returns the increment applied."""
    increment = int(os.environ.get(NICE_ENV, "10") or 0)
    if increment > 0 and hasattr(os, "nice"):
        try:
            os.nice(increment)
        except OSError:
            return 0
    return max(increment, 0)


def main() -> None:
    to_parent = Connection(os.dup(1))
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the message stream
    from_parent = Connection(os.dup(0))
    lower_priority()
    from .jobs import train_in_child  # after the redirect: importing torch may print

    task = from_parent.recv()
    stop = threading.Event()

    def listen() -> None:
        try:
            from_parent.recv()  # "stop"
        except (EOFError, OSError):
            pass
        stop.set()

    threading.Thread(target=listen, name="simplecnn-stop-listener", daemon=True).start()
    if task[0] == "compare":  # a lesson's side-by-side trainings (simplecnn.comparison)
        from .comparison import compare_in_child
        compare_in_child(to_parent, task[1], task[2], stop, *task[3:])
    else:  # (config, dataset name, run directory, seconds between saves)
        train_in_child(to_parent, *task, stop)


if __name__ == "__main__":
    main()
