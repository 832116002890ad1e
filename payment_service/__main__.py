"""payment-service's composition root: `python -m payment_service` (started by `ordersaga up`)."""

import os

from apphost import server as apphost
from apphost.statestore import OptimisticStore
from payment_service import payment_pb2, payment_pb2_grpc
from payment_service.server import STORE, PaymentServicer

APP_ID = "payment-service"


def default_limit_cents() -> int:
    """Credit of a customer nobody set a limit for (`ORDERSAGA_DEFAULT_CREDIT`, currency units)."""
    return round(float(os.environ.get("ORDERSAGA_DEFAULT_CREDIT", "100000")) * 100)


def main() -> None:
    apphost.run_service(
        APP_ID,
        payment_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        PaymentServicer(OptimisticStore(STORE), default_limit_cents()),
        payment_pb2_grpc.add_PaymentServiceServicer_to_server,
        business_methods=["Authorize", "Capture", "Void", "Refund"],
    )


if __name__ == "__main__":
    main()
