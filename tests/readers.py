"""Concurrent readers against one writer, for the tests of what `infer` sees while weights
change (update, stage/commit/rollback, buffer recycling): one harness instead of a copy of
the thread plumbing in each test."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(write: Callable[[], None], read: Callable[[], str | None], *, readers: int = 3,
         timeout: float = 120.0, failures: list[str] | None = None) -> list[str]:
    """Run `write()` once in a thread while `readers` threads call `read()` until it returns.

    `read` returns None when what it saw is right, else a message (that reader then stops).
    An exception in any thread is a failure too (else it is only a pytest warning). Returns
    the failures, appended to `failures` when given (the writer may watch it to stop early);
    fails the test if a thread is still running after `timeout` seconds."""
    stop = threading.Event()
    failures = [] if failures is None else failures

    def writer() -> None:
        try:
            write()
        except Exception as e:
            failures.append(f"writer: {e!r}")
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                failure = read()
                if failure is not None:
                    failures.append(failure)
                    return
        except Exception as e:
            failures.append(f"reader: {e!r}")

    threads = [threading.Thread(target=reader) for _ in range(readers)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), f"threads did not finish within {timeout} s"
    return failures
