"""The engine row: what the workflow engine alone does on the same stack build, so that every
figure of ordersaga reads as a ratio to it (issue 22). `count` instances of a workflow of five
no-op activities (order_service/engine_bench.py, registered only on the bench's stack) are
started at once on order-service's sidecar, with its store, scheduler and worker, and awaited.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as workflow_grpc
from dapr.ext.workflow._durabletask.internal import protos as history_pb
from google.protobuf import wrappers_pb2

from order_service.engine_bench import STEPS, WORKFLOW_NAME
from ordersaga.bench.core import Bench, StepResult, Usage, peak_rss_mb

COMPLETED = history_pb.OrchestrationStatus.Value("ORCHESTRATION_STATUS_COMPLETED")


async def engine_step(bench: Bench, count: int, at_once: bool = True) -> StepResult:
    """`count` workflows at once, or one after the other (`at_once=False`: the latency floor)."""
    port = bench.state.app_ports("order-service")[0].dapr_grpc
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = workflow_grpc.TaskHubSidecarServiceStub(channel)
    metadata = (("dapr-api-token", bench.state.api_token),)
    bench.steps += 1
    how = f"{count} at once" if at_once else "one at a time"
    result = StepResult(f"engine: {STEPS} no-op activities, {how}", offered=count)
    usage = Usage.now(bench.state)
    started = time.monotonic()
    ends: list[float] = []

    async def one(instance_id: str) -> None:
        sent = time.monotonic()
        try:
            await stub.StartInstance(history_pb.CreateInstanceRequest(
                name=WORKFLOW_NAME, instanceId=instance_id, input=wrappers_pb2.StringValue(value='{"n": 1}')),
                metadata=metadata, timeout=60)
            reply = await stub.WaitForInstanceCompletion(
                history_pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=False),
                metadata=metadata, timeout=300)
        except grpc.RpcError as error:
            result.errors += 1
            result.error_codes[error.code().name] += 1
            result.failed.append(instance_id)
            return
        if reply.workflowState.workflowStatus != COMPLETED:
            result.errors += 1
            result.error_codes[history_pb.OrchestrationStatus.Name(reply.workflowState.workflowStatus)] += 1
            return
        ends.append(time.monotonic())
        result.completed += 1
        result.latencies.append(ends[-1] - sent)

    ids = [f"engine-{bench.run}-{bench.steps}-{n}" for n in range(count)]
    if at_once:
        await asyncio.gather(*(one(instance_id) for instance_id in ids))
    else:
        for instance_id in ids:
            await one(instance_id)
    await channel.close()
    result.elapsed = (max(ends) if ends else time.monotonic()) - started
    result.cpu = usage.cpu_since()
    result.rss_mb = {name: peak_rss_mb(pid) for name, pid in usage.pids.items()}
    result.store_growth_kb = usage.store_kb_since()
    return result


def ratio_line(saga: StepResult, engine: StepResult) -> str:
    """ordersaga's saturated step beside the engine row: the issue's goal is >= 0.7x."""
    def cpu_ms(step: StepResult) -> float:
        return sum(step.cpu.values()) * 1000 / max(step.completed, 1)
    rate = saga.rate / engine.rate if engine.rate else float("nan")
    cpu = cpu_ms(saga) / cpu_ms(engine) if engine.completed else float("nan")
    return (f"ordersaga / engine: {rate:.2f}x the sagas/s ({saga.rate:.1f} '{saga.label}' against {engine.rate:.1f}), "
            f"{cpu:.2f}x the CPU per saga ({cpu_ms(saga):.0f} against {cpu_ms(engine):.0f} ms); goal >= 0.7x")
