"""What the four apps run on: the gRPC app host, the optimistic state store helper and fault
injection. The services import this package; nothing here imports the tooling (`ordersaga`)."""
