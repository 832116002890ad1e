"""inventory-service's composition root: `python -m inventory_service` (started by `ordersaga up`)."""

from apphost import server as apphost
from apphost.statestore import OptimisticStore
from inventory_service import inventory_pb2, inventory_pb2_grpc
from inventory_service.server import STORE, InventoryServicer

APP_ID = "inventory-service"


def main() -> None:
    apphost.run_service(
        APP_ID,
        inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"],
        InventoryServicer(OptimisticStore(STORE)),
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server,
        business_methods=["Reserve", "Release", "Commit", "ReserveLines", "ReleaseLines", "CommitLines"],
    )


if __name__ == "__main__":
    main()
