"""mTLS through Sentry and the services' access control, on the cluster: a call to a service is
judged by the caller's SPIFFE id in the certificate Sentry gave its sidecar, so only
order-service's sidecar gets through (components/config-services.yaml, DESIGN.md)."""

from __future__ import annotations

import grpc
import pytest

from ordersaga import kube
from ordersaga.client import MetadataInterceptor
from payment_service import payment_pb2 as pay_pb
from payment_service import payment_pb2_grpc as pay_grpc
from tests.k8s.conftest import NAMESPACE


def _get_credit_through(app_id: str) -> grpc.StatusCode:
    forward = kube.PortForward(NAMESPACE, f"deployment/{app_id}", remote_ports=(kube.DAPR_GRPC_PORT,))
    try:
        channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{forward.ports[kube.DAPR_GRPC_PORT]}"),
                                         MetadataInterceptor(("dapr-api-token", kube.api_token(NAMESPACE))))
        stub = pay_grpc.PaymentServiceStub(channel)
        try:
            stub.GetCredit(pay_pb.GetCreditRequest(customer_id="access-check"),
                           metadata=(("dapr-app-id", "payment-service"),), timeout=30)
        except grpc.RpcError as error:
            return error.code()
        finally:
            channel.close()
        return grpc.StatusCode.OK
    finally:
        forward.close()


@pytest.mark.timeout(300)
def test_only_order_service_may_call_the_services(installed):
    assert _get_credit_through("order-service") == grpc.StatusCode.OK
    assert _get_credit_through("inventory-service") == grpc.StatusCode.PERMISSION_DENIED
    assert _get_credit_through("shipping-service") == grpc.StatusCode.PERMISSION_DENIED
