"""Whether order-service still serves what it exists for: the actor host's event stream (every
OrderActor call comes over it) and the workflow worker's work-item stream (every saga step). Both
SDK objects reconnect by themselves after a blip, but each can stop for good: the actor host once
the sidecar stayed away longer than DAPR_HEALTH_TIMEOUT or its stream ended with CANCELLED, the
worker after a CANCELLED stream error (durabletask-python #175). Neither says so publicly, so
this reads their state; the names it reads are checked against the SDK by
tests/unit/test_liveness.py, which fails on an SDK that renamed them.

The app's gRPC health then reports NOT_SERVING (apphost.server), and Kubernetes' liveness probe
restarts the pod instead of leaving it up and useless.
"""

from __future__ import annotations


def actor_host_lost(host) -> str | None:
    """Why the actor host no longer serves actor calls, or None while it does (or reconnects).
    Its serving task (`_run_task`) is set at start and cleared or done once it gave up."""
    task = getattr(host, "_run_task", None)
    if task is None:
        return "the actor host stopped serving actor calls (its event stream to the sidecar ended for good)"
    if task.done():
        return "the actor host's event stream task ended"
    return None


def workflow_worker_lost(runtime) -> str | None:
    """Why the workflow worker no longer runs saga steps, or None while it does (or reconnects).
    Its run loop thread (`_runLoop`) lives from start until it gave up or was stopped."""
    worker = getattr(runtime, "_WorkflowRuntime__worker", None)
    loop = getattr(worker, "_runLoop", None)
    if loop is None or not loop.is_alive():
        return "the workflow worker stopped running saga steps (its work-item stream ended for good)"
    return None
