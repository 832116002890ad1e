"""The checked-in gRPC stubs must match their .proto files."""


from ordersaga import protos


def test_generated_stubs_are_current(tmp_path):
    protos.generate(out_dir=tmp_path)
    stale = []
    for proto in protos.PROTO_FILES:
        stem = proto.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            fresh = (tmp_path / f"{stem}{suffix}").read_text()
            checked_in = (protos.ROOT / f"{stem}{suffix}").read_text()
            if fresh != checked_in:
                stale.append(f"{stem}{suffix}")
    assert not stale, f"regenerate with `make protos`: {stale}"
