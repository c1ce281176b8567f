"""Running one cell of the step protocol so that the implementation under test cannot take the
suite down with it: its exceptions, hangs, crashes of the interpreter and malformed outputs
become a cell-level finding (:class:`Crash` in :mod:`.sequence`), and every update measured
before them is kept.

A *cell* is one (task, seed, delta, batch) sequence: ``new_policy`` then ``updates``
consecutive ``policy_step`` calls. :func:`run_cell` runs it in a forked worker process and
streams every call's raw result back over a pipe as soon as it exists; the parent measures.

Why a worker process, and a timer inside it (two layers):

- ``signal.setitimer`` in the worker interrupts a call that runs past the per-call limit at the
  next Python bytecode (an endless loop, a ``time.sleep``, a long Python-level search). The
  worker is single-threaded and the handler is its own, so the alarm is reliable there; the
  implementation's state after the interruption can then still be read and judged.
- A call stuck inside C code (a deadlock in a native library, an enormous tensor op) never
  returns to the interpreter, so no signal handler runs; and a segfault or ``os._exit`` ends the
  interpreter. Only a separate process survives those: the parent waits ``limit + grace`` for
  each message and then kills the worker (its state is then ``unknown``).

A timer in the suite's own process could do neither of the latter, would fire only in the main
thread (a runner's thread pool or Ray worker has none) and would fight pytest-timeout over
SIGALRM. Where ``fork`` is unavailable (or ``TRPO_CLAIMS_ISOLATION=inline``) the cell runs
in-process with the timer alone, and the evidence's config says so.

The per-call limit is declared (:data:`DEFAULT_CALL_TIMEOUT_S`) and configurable with the
environment variable ``TRPO_CLAIMS_CALL_TIMEOUT_S`` or :func:`call_timeout`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_CALL_TIMEOUT_S = 120.0  # one policy update; ~0.1 s on the quick tier's batches
GRACE_S = 10.0  # beyond the limit, before the parent kills a worker stuck in native code
ISOLATIONS = ("process", "inline")

_OVERRIDE: list[float] = []


def call_timeout_s() -> float:
    """The per-call limit in force: :func:`call_timeout`, else ``TRPO_CLAIMS_CALL_TIMEOUT_S``,
    else :data:`DEFAULT_CALL_TIMEOUT_S`."""
    if _OVERRIDE:
        return _OVERRIDE[-1]
    value = float(os.environ.get("TRPO_CLAIMS_CALL_TIMEOUT_S", DEFAULT_CALL_TIMEOUT_S))
    if not value > 0:
        raise ValueError(f"TRPO_CLAIMS_CALL_TIMEOUT_S must be > 0, got {value}")
    return value


@contextlib.contextmanager
def call_timeout(seconds: float) -> Iterator[None]:
    """Use ``seconds`` as the per-call limit inside the body."""
    if not seconds > 0:
        raise ValueError(f"the call timeout must be > 0, got {seconds}")
    _OVERRIDE.append(float(seconds))
    try:
        yield
    finally:
        _OVERRIDE.pop()


def isolation() -> str:
    """``process`` (a forked worker per cell) or ``inline`` (in-process, timer only)."""
    wanted = os.environ.get("TRPO_CLAIMS_ISOLATION", "process")
    if wanted not in ISOLATIONS:
        raise ValueError(f"TRPO_CLAIMS_ISOLATION must be one of {ISOLATIONS}, got {wanted!r}")
    if wanted == "process" and "fork" not in multiprocessing.get_all_start_methods():
        return "inline"
    return wanted


class CallTimeout(Exception):
    """A call into the implementation ran past the per-call limit."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CallTimeout


def guarded(limit: float | None) -> Callable[..., Any]:
    """``call(fn, *args)`` runs ``fn(*args)`` with the timer armed (when ``limit`` is set and
    this is the main thread: signals reach only the main thread)."""
    can_alarm = limit is not None and threading.current_thread() is threading.main_thread()

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        if not can_alarm:
            return fn(*args)
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return call


def describe(error: BaseException, limit: float | None) -> tuple[str, str]:
    """(kind, "Type: message") of an exception the implementation raised."""
    if isinstance(error, CallTimeout):
        return "timeout", f"no result within the per-call limit of {limit:g} s"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return "exception", f"{type(error).__name__}: {error}"[:500] + where


Script = Callable[[Callable[[tuple[Any, ...]], None], Callable[..., Any]], None]


def run_cell(script: Script, limit: float, mode: str | None = None) -> list[tuple[Any, ...]]:
    """Run ``script(send, call)`` (it calls the implementation only through ``call`` and reports
    with ``send``) and return every message it sent, in order. In ``process`` mode a message
    that does not arrive within ``limit + GRACE_S`` ends the worker, and the list ends with
    ``("lost", kind, detail)``: kind "timeout" or "died"."""
    mode = mode or isolation()
    if mode == "inline":
        messages: list[tuple[Any, ...]] = []
        script(messages.append, guarded(limit))
        return messages
    context = multiprocessing.get_context("fork")
    receive, send_end = context.Pipe(duplex=False)
    worker = context.Process(target=_worker, args=(script, send_end, limit), daemon=True)
    worker.start()
    send_end.close()  # so that the worker's death reads as EOF here
    messages = []
    try:
        while True:
            if not receive.poll(limit + GRACE_S):
                messages.append(("lost", "timeout", f"no answer within {limit:g} s + "
                                 f"{GRACE_S:g} s grace; the worker was killed (stuck outside "
                                 "the interpreter)"))
                break
            try:
                message = receive.recv()
            except EOFError:
                worker.join(5)
                messages.append(("lost", "died", _exit_text(worker.exitcode)))
                break
            if message == ("end",):
                break
            messages.append(message)
    finally:
        receive.close()
        if worker.is_alive():
            worker.kill()
        worker.join(5)
    return messages


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"the worker was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the worker was killed by signal {-code}"
    return f"the worker exited with code {code} before the cell ended"


def _worker(script: Script, conn: Any, limit: float) -> None:
    import faulthandler

    import torch  # one intra-op thread: forked OpenMP pools are unsafe, and small nets lose

    faulthandler.disable()  # a crash of the implementation is reported by the parent
    torch.set_num_threads(1)

    def send(message: tuple[Any, ...]) -> None:
        try:
            conn.send(message)
        except Exception as error:  # an output that cannot be pickled is the implementation's
            conn.send(("unsendable", f"{type(error).__name__}: {error}"[:500]))

    script(send, guarded(limit))
    conn.send(("end",))
    conn.close()
