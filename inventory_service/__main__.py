"""inventory-service's composition root: `python -m inventory_service` (started by `ordersaga up`)."""

from inventory_service import inventory_pb2, inventory_pb2_grpc
from inventory_service.server import InventoryServicer
from inventory_service.store import InventoryStore
from ordersaga import apphost

APP_ID = "inventory-service"


def main() -> None:
    app = apphost.new_app()
    store = InventoryStore()
    app.add_external_service(inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryServicer(store))
    service = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name
    apphost.run(APP_ID, app, [service])


if __name__ == "__main__":
    main()
