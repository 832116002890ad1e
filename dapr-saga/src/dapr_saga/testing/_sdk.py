"""Every private name of dapr-ext-workflow the harness touches, in one place, checked at import.

The SDK offers no public way to run a workflow without a sidecar, or to replay a history: what
runs workflows inside an app (its orchestration executor, fed the history by the sidecar) is
private. The harness runs workflows on exactly that code, so that what is tested is what runs,
and it reaches for the names below. Each is checked here when `dapr_saga.testing` is imported:
an SDK that renamed or removed one fails the import with the name and what to change, instead of
failing tests somewhere deep with an AttributeError.

One more the kit itself relies on, outside the harness: the attributes the SDK marks a registered
function with (`dapr_saga/registry.py`, `_REGISTRATION_MARKS`), which a fresh wrapper must not
inherit; the kit's tests register the same code twice in one process, which fails if they change.

Checked against dapr-ext-workflow 1.18.3 (TESTED_WITH). When a check fails after an upgrade:
find the name's new home in the SDK's `_durabletask` package (worker.py, task.py,
internal/helpers.py, internal/shared.py, internal/protos.py), change it here and only here, and
run the kit's tests (`pytest dapr-saga/tests`), which exercise every one of them.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata

TESTED_WITH = "1.18.3"

# (module, attribute): what the harness uses it for.
REQUIRED = {
    ("dapr.ext.workflow._durabletask.worker", "_OrchestrationExecutor"): "runs a workflow's turn on a history",
    ("dapr.ext.workflow._durabletask.task", "ActivityContext"): "the context a registered activity is called with",
    ("dapr.ext.workflow._durabletask.internal.helpers", "new_failure_details"): "an activity's error, as the worker "
                                                                                 "reports it",
    ("dapr.ext.workflow._durabletask.internal.helpers", "OPTIONAL_TIMER_FIRE_AT"): "the timer of a wait without "
                                                                                    "timeout, which never fires",
    ("dapr.ext.workflow._durabletask.internal.shared", "to_json"): "encodes inputs and results as the SDK does",
    ("dapr.ext.workflow._durabletask.internal.shared", "from_json"): "decodes them",
    ("dapr.ext.workflow._durabletask.internal.protos", "HistoryEvent"): "the history's events",
    ("dapr.ext.workflow._durabletask.internal.protos", "WorkflowVersion"): "a turn's version and patches",
    ("dapr.ext.workflow._durabletask.internal.protos", "OrchestrationStatus"): "how a workflow ended",
    ("dapr.ext.workflow", "WorkflowRuntime"): "registers workflows and activities as an app does",
}
# The attribute of a WorkflowRuntime that holds its worker (name-mangled), and the worker's registry.
RUNTIME_WORKER = "_WorkflowRuntime__worker"
WORKER_REGISTRY = "_registry"
REGISTRY_ACTIVITIES = "activities"


class SdkChanged(ImportError):
    pass


def _installed() -> str:
    try:
        return metadata.version("dapr-ext-workflow")
    except metadata.PackageNotFoundError:
        return "not installed"


def _resolve(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise SdkChanged(
            f"dapr_saga.testing needs {module}.{name} ({REQUIRED[(module, name)]}), which dapr-ext-workflow "
            f"{_installed()} does not have ({error}); it was checked with {TESTED_WITH}. Find where the SDK "
            f"moved it and change dapr_saga/testing/_sdk.py, the one place that names it, or pin "
            f"dapr-ext-workflow=={TESTED_WITH}.") from None


executor_class = _resolve("dapr.ext.workflow._durabletask.worker", "_OrchestrationExecutor")
ActivityContext = _resolve("dapr.ext.workflow._durabletask.task", "ActivityContext")
new_failure_details = _resolve("dapr.ext.workflow._durabletask.internal.helpers", "new_failure_details")
OPTIONAL_TIMER_FIRE_AT = _resolve("dapr.ext.workflow._durabletask.internal.helpers", "OPTIONAL_TIMER_FIRE_AT")
to_json = _resolve("dapr.ext.workflow._durabletask.internal.shared", "to_json")
from_json = _resolve("dapr.ext.workflow._durabletask.internal.shared", "from_json")
pb = importlib.import_module("dapr.ext.workflow._durabletask.internal.protos")
for _module, _name in REQUIRED:
    _resolve(_module, _name)
WorkflowRuntime = _resolve("dapr.ext.workflow", "WorkflowRuntime")


def new_runtime():
    """A WorkflowRuntime that never connects: registration only, quiet."""
    from dapr.ext.workflow.logger import LoggerOptions
    return WorkflowRuntime(host="127.0.0.1", port="1", logger_options=LoggerOptions(log_level=logging.WARNING))


def registry_of(runtime):
    """The worker's registry of a WorkflowRuntime: what the executor looks workflows up in."""
    worker = getattr(runtime, RUNTIME_WORKER, None)
    registry = getattr(worker, WORKER_REGISTRY, None)
    if registry is None or not isinstance(getattr(registry, REGISTRY_ACTIVITIES, None), dict):
        raise SdkChanged(
            f"dapr_saga.testing reads a WorkflowRuntime's registry as runtime.{RUNTIME_WORKER}.{WORKER_REGISTRY} "
            f"(with a dict `{REGISTRY_ACTIVITIES}`), which dapr-ext-workflow {_installed()} does not have; it was "
            f"checked with {TESTED_WITH}. Change dapr_saga/testing/_sdk.py (registry_of).")
    return registry


def executor(registry, logger: logging.Logger):
    return executor_class(registry, logger)


def activity_context(instance_id: str, task_id: int, execution_id: str):
    return ActivityContext(instance_id, task_id, execution_id)


def _selftest() -> None:
    """One workflow turn through the executor, as the harness makes it: the shapes it relies on."""
    runtime = new_runtime()

    def probe(ctx, _):
        yield ctx.create_timer(ctx.current_utc_datetime)
        return "ok"

    runtime.register_workflow(probe, name="dapr_saga_probe")
    started = pb.HistoryEvent(eventId=-1, workflowStarted=pb.WorkflowStartedEvent())
    begun = pb.HistoryEvent(eventId=-1, executionStarted=pb.ExecutionStartedEvent(
        name="dapr_saga_probe", workflowInstance=pb.WorkflowInstance(instanceId="probe")))
    results = executor(registry_of(runtime), logging.getLogger("dapr_saga.testing")).execute("probe", [],
                                                                                            [started, begun])
    for field in ("actions", "encoded_custom_status", "version_name", "patches"):
        if not hasattr(results, field):
            raise SdkChanged(f"dapr_saga.testing reads `{field}` of the executor's results, which dapr-ext-workflow "
                             f"{_installed()} does not give (checked with {TESTED_WITH}): change "
                             "dapr_saga/testing/_sdk.py and dapr_saga/testing/harness.py.")
    if not results.actions or not results.actions[0].HasField("createTimer"):
        raise SdkChanged(f"the executor of dapr-ext-workflow {_installed()} did not answer a timer with a "
                         f"createTimer action (checked with {TESTED_WITH}): see dapr_saga/testing/harness.py.")


_selftest()
