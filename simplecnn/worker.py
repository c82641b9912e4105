"""The training process behind a `TrainingJob`: `python -m simplecnn.worker`, driven over stdin/stdout.

The parent sends one message, (config dict, dataset name, trainer state as torch.save bytes), then
maybe "stop"; the child reports batches, weights and epochs, and at the end its full state (see
`simplecnn.jobs.train_in_child`). End of file on stdin (the parent went away) stops it too.
"""
from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection


def main() -> None:
    to_parent = Connection(os.dup(1))
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the message stream
    from_parent = Connection(os.dup(0))
    from .jobs import train_in_child  # after the redirect: importing torch may print

    config, dataset_name, state = from_parent.recv()
    stop = threading.Event()

    def listen() -> None:
        try:
            from_parent.recv()  # "stop"
        except (EOFError, OSError):
            pass
        stop.set()

    threading.Thread(target=listen, name="simplecnn-stop-listener", daemon=True).start()
    train_in_child(to_parent, config, dataset_name, state, stop)


if __name__ == "__main__":
    main()
