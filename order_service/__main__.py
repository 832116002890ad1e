"""order-service's composition root: `python -m order_service` (started by `ordersaga up`).

One process hosts: the gRPC app server (orders.v1.OrderService, the approvals subscription,
health, reflection), the OrderActor over the app-initiated actor stream, and the workflow
worker running the saga.
"""

from __future__ import annotations

import importlib
import logging
import os

from dapr.ext.workflow import WorkflowRuntime
from dapr.ext.workflow.logger import LoggerOptions

from apphost import server as apphost
from order_service import actor, admission, api, engine_bench, liveness, orders_pb2, orders_pb2_grpc, stuck
from order_service.actor_host import new_actor_host
from order_service.api import OrderApi
from order_service.approvals import ApprovalHandler
from order_service.dead_letters import publisher
from order_service.intake import IntakeHandler
from order_service.settings import Settings
from order_service.sidecar import Actors, sidecar
from order_service.topics import (
    APPROVALS_DEAD_LETTER_TOPIC,
    APPROVALS_TOPIC,
    PUBSUB,
    REQUESTS_DEAD_LETTER_TOPIC,
    REQUESTS_TOPIC,
)
from order_service.workflows import latest_saga_version
from order_service.workflows import register as register_workflows

APP_ID = "order-service"


def extra_saga_versions() -> list:
    """One more saga version, named in ORDERSAGA_EXTRA_SAGA_VERSION as `module:function:version`,
    registered after (and so newer than) the built-in ones. The upgrade test plays a release
    with it; a team can canary a version the same way before it joins workflows.SAGA_VERSIONS."""
    spec = os.environ.get("ORDERSAGA_EXTRA_SAGA_VERSION", "").strip()
    if not spec:
        return []
    module, function, version = spec.split(":")
    return [(version, getattr(importlib.import_module(module), function))]


def main() -> None:
    settings = Settings.from_env()
    extra_versions = extra_saga_versions()
    actor.configure(settings, saga_version=latest_saga_version(extra_versions))
    admission.configure(admission.Admission(settings.max_active_sagas, settings.retry_after_ms))
    actors = Actors(sidecar(), actor.ACTOR_TYPE)

    app = apphost.new_app(max_workers=api.server_threads(settings.max_watchers))
    # Refusals go to the dead-letter topics with their reason (order_service/dead_letters.py);
    # also declared as the subscriptions' dead-letter topics: what keeps failing ends there too.
    app.subscribe(PUBSUB, APPROVALS_TOPIC, dead_letter_topic=APPROVALS_DEAD_LETTER_TOPIC)(ApprovalHandler(
        actors, publisher(sidecar(), APPROVALS_DEAD_LETTER_TOPIC, "ordersaga.approval.refused")))
    app.subscribe(PUBSUB, REQUESTS_TOPIC, dead_letter_topic=REQUESTS_DEAD_LETTER_TOPIC)(IntakeHandler(
        actors, publisher(sidecar(), REQUESTS_DEAD_LETTER_TOPIC, "ordersaga.order-request.refused")))
    order_api = OrderApi(actors, sidecar(), max_watchers=settings.max_watchers, stuck_after_s=settings.stuck_after_s,
                         retention_s=settings.workflow_retention_s)
    app.add_external_service(orders_pb2_grpc.add_OrderServiceServicer_to_server, order_api)
    service = orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name

    # Activities log each failure with its attempt number; the SDK's own copy of it is noise.
    workflows = WorkflowRuntime(logger_options=LoggerOptions(log_level=logging.ERROR))
    register_workflows(workflows, extra_saga_versions=extra_versions)
    if os.environ.get(engine_bench.ENGINE_BENCH_ENV) == "1":
        engine_bench.register(workflows)

    started = {}

    async def startup():
        actor_host = started["actor_host"] = new_actor_host(idle_s=settings.actor_idle_s)
        await actor_host.register_actor(actor.OrderActor)
        await actor_host.start()
        workflows.start()
        scan = stuck.Scan(order_api, actors, settings.stuck_scan_s)
        scan.start()

        async def shutdown():
            scan.stop()
            workflows.shutdown()
            await actor_host.close()

        return shutdown

    def alive() -> str | None:
        return liveness.actor_host_lost(started["actor_host"]) or liveness.workflow_worker_lost(workflows)

    apphost.run(APP_ID, app, [service], startup, liveness=alive)


if __name__ == "__main__":
    main()
