"""Who may call whom on a running stack (DESIGN.md): only order-service calls inventory-, payment-
and shipping-service (Dapr access control over mTLS identities), while order-service's public
API answers through any sidecar. Shared by tests/e2e (embedded) and tests/production (two
replicas): every sidecar of every replica is tried."""

from __future__ import annotations

import grpc

from apphost import faults_pb2, faults_pb2_grpc
from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as orders_grpc
from ordersaga.client import MetadataInterceptor, SagaClient
from ordersaga.stack.layout import APPS, replica_name
from payment_service import payment_pb2 as pay_pb
from payment_service import payment_pb2_grpc as pay_grpc

SERVICES = [app for app in APPS if app != "order-service"]


def sidecars(saga: SagaClient, apps=APPS) -> dict[str, int]:
    """The gRPC port of every replica's sidecar of `apps`, by process name."""
    return {f"{replica_name(app, i)}-daprd": ports.dapr_grpc
            for app in apps for i, ports in enumerate(saga.state.app_ports(app))}


def through(saga: SagaClient, port: int, app_id: str) -> grpc.Channel:
    """A channel through the sidecar on `port` to `app_id`, as an app or a client with the API
    token would open it (Dapr's gRPC proxying)."""
    metadata = MetadataInterceptor(("dapr-api-token", saga.state.api_token), ("dapr-app-id", app_id))
    return grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), metadata)


def refused(call) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return None


def check_only_order_service_calls_payment(saga: SagaClient, customer: str) -> None:
    """Through every sidecar but order-service's, a payment call is PERMISSION_DENIED and changes
    nothing (the ledger read before and after, through order-service), the Faults API included:
    the issue's attack, error_rate=1 on payment-service from another app. Through
    order-service's sidecars the same calls work."""
    saga.set_credit(customer, 500_00)
    before = saga.get_credit(customer)
    for name, port in sidecars(saga, SERVICES).items():
        channel = through(saga, port, "payment-service")
        payment = pay_grpc.PaymentServiceStub(channel)
        assert refused(lambda: payment.SetCredit(pay_pb.SetCreditRequest(customer_id=customer, limit_cents=1),
                                                 timeout=30)) == grpc.StatusCode.PERMISSION_DENIED, name
        assert refused(lambda: payment.Authorize(pay_pb.AuthorizeRequest(
            customer_id=customer, amount_cents=100_00, idempotency_key=f"{customer}:forged"),
            timeout=30)) == grpc.StatusCode.PERMISSION_DENIED, name
        faults = faults_pb2_grpc.FaultsStub(channel)
        assert refused(lambda: faults.Set(faults_pb2.FaultSettings(error_rate=1.0), timeout=30)) == \
            grpc.StatusCode.PERMISSION_DENIED, name
        assert refused(lambda: payment.GetCredit(pay_pb.GetCreditRequest(customer_id=customer), timeout=30)) == \
            grpc.StatusCode.PERMISSION_DENIED, name
    assert saga.get_credit(customer) == before, "a refused call changed the ledger"
    for name, port in sidecars(saga, ["order-service"]).items():
        payment = pay_grpc.PaymentServiceStub(through(saga, port, "payment-service"))
        assert payment.SetCredit(pay_pb.SetCreditRequest(customer_id=customer, limit_cents=400_00),
                                 timeout=30).limit_cents == 400_00, name
        assert faults_pb2_grpc.FaultsStub(through(saga, port, "payment-service")).Get(
            faults_pb2.GetFaultsRequest(), timeout=30).error_rate == 0.0, name
    assert saga.get_credit(customer).limit_cents == 400_00


def check_the_public_api_answers_through_every_sidecar(saga: SagaClient, order_id: str) -> None:
    for name, port in sidecars(saga).items():
        api = orders_grpc.OrderServiceStub(through(saga, port, "order-service"))
        assert api.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30).order_id == order_id, name
