"""Generate the Python stubs of the services' .proto files (checked in; a unit test keeps them current).

`python -m ordersaga.protos` regenerates every stub next to its .proto file.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_FILES = [
    "order_service/orders.proto",
    "inventory_service/inventory.proto",
    "payment_service/payment.proto",
    "shipping_service/shipping.proto",
    "apphost/faults.proto",
]


def generate(out_dir: Path = ROOT) -> None:
    from grpc_tools import protoc  # test extra: only needed to (re)generate

    include = str(Path(protoc.__file__).parent / "_proto")
    for proto in PROTO_FILES:
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}", str(ROOT / proto)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")


if __name__ == "__main__":
    generate()
    print(f"generated stubs for {len(PROTO_FILES)} proto files", file=sys.stderr)
