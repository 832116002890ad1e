"""shipping-service's composition root: `python -m shipping_service` (started by `ordersaga up`)."""

from apphost import server as apphost
from apphost.statestore import OptimisticStore
from shipping_service import shipping_pb2, shipping_pb2_grpc
from shipping_service.server import STORE, ShippingServicer

APP_ID = "shipping-service"


def main() -> None:
    apphost.run_service(
        APP_ID,
        shipping_pb2.DESCRIPTOR.services_by_name["ShippingService"],
        ShippingServicer(OptimisticStore(STORE)),
        shipping_pb2_grpc.add_ShippingServiceServicer_to_server,
        business_methods=["CreateShipment", "CancelShipment"],
    )


if __name__ == "__main__":
    main()
