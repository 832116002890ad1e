"""The bench's per-saga counts (ordersaga/bench/counts.py) from the sidecars' metrics, and the
engine row's workflow (order_service/engine_bench.py)."""

from order_service import engine_bench
from ordersaga.bench import counts

API = "/dapr.proto.runtime.v1.Dapr/"
WORKFLOW_ACTORS = "dapr.internal.default.order-service."


def sample(name: str, value: float, **labels: str) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "} " + f"{value:g}"


def rpcs(method: str, value: float) -> str:
    return sample("dapr_grpc_io_server_completed_rpcs", value, app_id="order-service", grpc_server_method=method,
                  grpc_server_status="OK")


ORDER_SERVICE = "\n".join([
    "# HELP dapr_grpc_io_server_completed_rpcs ...",
    rpcs(API + "InvokeActor", 50), rpcs(API + "ExecuteActorStateTransaction", 70),
    rpcs(API + "RegisterActorReminder", 10),
    sample("dapr_runtime_actor_reminders_fired_total", 60, actor_type=WORKFLOW_ACTORS + "workflow", success="true"),
    sample("dapr_runtime_actor_reminders_fired_total", 50, actor_type=WORKFLOW_ACTORS + "activity", success="true"),
    sample("dapr_runtime_service_invocation_req_sent_total", 20, dst_app_id="inventory-service", type="unary"),
    sample("dapr_runtime_service_invocation_req_sent_total", 10, dst_app_id="order-service", type="unary"),
    sample("dapr_component_pubsub_egress_count", 20, component="orderpubsub", success="true", topic="order-events"),
    sample("dapr_component_state_count", 20, component="order-store", operation="set", success="true"),
    'go_gc_duration_seconds{quantile="0"} 1e-05',
])
INVENTORY = sample("dapr_component_state_count", 20, component="inventory-store", operation="transaction",
                   success="true")


def test_counts_per_saga_are_the_step_s_differences_divided_by_its_sagas():
    after = {**counts.parse(ORDER_SERVICE, "order-service"), **counts.parse(INVENTORY, "inventory-service")}
    before = {key: value / 2 for key, value in after.items()}  # half of it happened before the step
    per = counts.per_saga(before, after, sagas=5)
    assert per["actor turns"] == 5
    assert per["actor state writes"] == 7 and per["actor reminders set"] == 1
    assert per["workflow reminders fired"] == 11
    assert per["service calls"] == 2  # to the services only: the client's PlaceOrder is not one
    assert per["service state transactions"] == 2 and per["published events"] == 2
    assert per["order-store writes (index)"] == 2
    assert "scheduler jobs 12.0" in counts.counts_line("x", per)


def test_samples_of_other_metrics_are_left_out():
    assert not [key for key in counts.parse(ORDER_SERVICE, "order-service") if key[1].startswith("go_")]


def test_the_engine_workflow_calls_five_no_op_activities_in_a_row():
    class Ctx:
        def call_activity(self, name, input):
            return (name, input)

    run = engine_bench.engine_bench(Ctx(), {"n": 1})
    calls = [next(run)]
    try:
        while True:
            calls.append(run.send(calls[-1][1]))
    except StopIteration as done:
        assert done.value == {"n": 1}
    assert calls == [(engine_bench.ACTIVITY_NAME, {"n": 1})] * engine_bench.STEPS
