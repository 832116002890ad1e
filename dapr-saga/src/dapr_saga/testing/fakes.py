"""Activity fakes for the harness: what a service does, scripted.

A fake is any callable that takes the activity's input (the model its registered activity
declares, else the decoded JSON) and returns its answer, or raises (the worker reports the
error to the workflow, whose retry policy decides). It may also return `HANG` (the activity
never answers) or `Later(after, answer)` (it answers `after` later on the virtual clock; an
exception as `answer` fails it then). `current_call()` says which call and attempt is running.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

HANG = object()  # never answers


@dataclass(frozen=True)
class Later:
    """An answer (or an exception) that arrives `after` the call, on the virtual clock."""

    after: timedelta
    answer: Any = None


@dataclass(frozen=True)
class Attempt:
    """The attempt running now: the `call`-th call of `activity` in the run (1 for the first;
    retries of a call keep its number) and its `attempt`-th try (1, 2, ...)."""

    activity: str
    call: int
    attempt: int


_current: ContextVar[Attempt | None] = ContextVar("dapr_saga_current_call", default=None)


def current_call() -> Attempt:
    attempt = _current.get()
    if attempt is None:
        raise RuntimeError("current_call() is only known inside a fake the harness runs")
    return attempt


def _answer(then: Any, value: Any) -> Any:
    return then(value) if callable(then) else then


def answers(value: Any) -> Callable:
    """Always `value`."""
    return lambda _input: value


def raises(error: BaseException) -> Callable:
    """Every attempt raises `error` (a technical failure the retry policy retries, or a bug)."""
    def fake(_input):
        raise error
    return fake


def fails(*, attempts: int | None = None, calls: int | None = None, error: BaseException | None = None,
          then: Any = None) -> Callable:
    """Raises `error` for the first `attempts` attempts (counted over the run, retries included),
    or for every attempt of the first `calls` calls (a call fails for good, after its retries);
    then answers `then` (a value, or a fake to ask)."""
    if (attempts is None) == (calls is None):
        raise ValueError("fails() takes attempts= or calls=")
    error = error or RuntimeError("injected failure")
    seen = {"attempts": 0}

    def fake(value):
        seen["attempts"] += 1
        now = current_call()
        if (attempts is not None and seen["attempts"] <= attempts) or (calls is not None and now.call <= calls):
            raise error
        return _answer(then, value)
    return fake


def hangs() -> Callable:
    """Never answers (the workflow waits, or its step timeout fires)."""
    return lambda _input: HANG


def late(after: timedelta, answer: Any) -> Callable:
    """Answers `answer` (a value, a fake, or an exception to fail with) `after` the call."""
    return lambda value: Later(after, answer if isinstance(answer, BaseException) else _answer(answer, value))


def sequence(*answers_in_order: Any) -> Callable:
    """The n-th attempt (over the run) gets the n-th answer: a value, a fake, or an exception to
    raise; the last one repeats."""
    seen = {"n": 0}

    def fake(value):
        seen["n"] += 1
        answer = answers_in_order[min(seen["n"], len(answers_in_order)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return _answer(answer, value)
    return fake
