"""order-service's health follows its actor host and its workflow worker (issue 18, hole 8): once
either stopped for good, grpc.health.v1 says NOT_SERVING, so Kubernetes restarts the pod. The
SDK objects say so only in private state; these tests pin what order_service/liveness.py reads
to the SDK installed, so an SDK that renames it fails here, not silently in production."""

from __future__ import annotations

import asyncio
import threading

from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.ext.workflow import WorkflowRuntime
from grpc_health.v1 import health_pb2

from apphost.server import follow_liveness
from order_service.liveness import actor_host_lost, workflow_worker_lost


def test_an_actor_host_that_gave_up_is_lost_and_one_that_serves_is_not():
    async def check():
        host = ActorGrpcHost(app_port=0)
        serving = asyncio.get_running_loop().create_future()
        host._run_task = serving
        assert actor_host_lost(host) is None

        async def gave_up():
            raise ConnectionError("sidecar gone for longer than DAPR_HEALTH_TIMEOUT")
        failed = asyncio.create_task(gave_up())
        await asyncio.sleep(0)
        host._run_task = failed
        host._on_run_task_done(failed)  # what the SDK does when its serving task fails
        assert "stopped serving actor calls" in actor_host_lost(host)
        serving.cancel()
    asyncio.run(check())


def test_a_workflow_worker_whose_run_loop_ended_is_lost():
    runtime = WorkflowRuntime(host="127.0.0.1", port="1")
    worker = runtime._WorkflowRuntime__worker
    assert worker._runLoop is None  # set by start()
    assert "stopped running saga steps" in workflow_worker_lost(runtime)
    stop = threading.Event()
    worker._runLoop = threading.Thread(target=stop.wait, daemon=True)
    worker._runLoop.start()
    assert workflow_worker_lost(runtime) is None
    stop.set()
    worker._runLoop.join()
    assert "stopped running saga steps" in workflow_worker_lost(runtime)


class Health:
    def __init__(self):
        self.statuses = {}

    def set(self, name, status):
        self.statuses[name] = status


def test_health_turns_not_serving_for_every_service_once_liveness_names_a_reason():
    answers = iter([None, None, "the actor host stopped serving actor calls"])
    health = Health()
    reason = asyncio.run(follow_liveness("order-service", health, ["", "orders.v1.OrderService"],
                                         lambda: next(answers), every_s=0.001))
    assert "actor host" in reason
    assert health.statuses == {"": health_pb2.HealthCheckResponse.NOT_SERVING,
                               "orders.v1.OrderService": health_pb2.HealthCheckResponse.NOT_SERVING}
