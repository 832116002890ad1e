"""A generic gRPC client that knows no stubs: it learns services and messages through server
reflection, like grpcurl, and can send its calls through a Dapr sidecar (`dapr-app-id`).

daprd answers reflection requests itself (they name its own services), so reflection goes to
the app's port while the calls may go through any sidecar.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ordersaga.client import MetadataInterceptor


class ReflectionClient:
    def __init__(self, reflection_target: str, reflection_token: str, call_target: str | None = None,
                 call_token: str | None = None, app_id: str | None = None):
        """`*_token`: the `dapr-api-token` each target wants (the app token for an app's port,
        the API token for a sidecar)."""
        reflection = grpc.intercept_channel(grpc.insecure_channel(reflection_target),
                                            MetadataInterceptor(("dapr-api-token", reflection_token)))
        self._db = ProtoReflectionDescriptorDatabase(reflection)
        self._pool = descriptor_pool.DescriptorPool(self._db)
        metadata = [("dapr-api-token", call_token or reflection_token)]
        if app_id:
            metadata.append(("dapr-app-id", app_id))
        self.channel = grpc.intercept_channel(grpc.insecure_channel(call_target or reflection_target),
                                              MetadataInterceptor(*metadata))

    def services(self) -> list[str]:
        return list(self._db.get_services())

    def _method(self, full_method: str):
        service_name, method_name = full_method.rsplit("/", 1)
        method = self._pool.FindServiceByName(service_name).FindMethodByName(method_name)
        return (method, message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type))

    def call(self, full_method: str, request: dict, timeout: float = 30) -> dict:
        """Call `package.Service/Method` with a JSON-like request; the reply as a dict."""
        method, request_class, reply_class = self._method(full_method)
        stub = self.channel.unary_unary(f"/{full_method}", request_serializer=request_class.SerializeToString,
                                        response_deserializer=reply_class.FromString)
        reply = stub(json_format.ParseDict(request, request_class()), timeout=timeout)
        return json_format.MessageToDict(reply, preserving_proto_field_name=True)

    def stream(self, full_method: str, request: dict, timeout: float = 60):
        method, request_class, reply_class = self._method(full_method)
        stub = self.channel.unary_stream(f"/{full_method}", request_serializer=request_class.SerializeToString,
                                         response_deserializer=reply_class.FromString)
        for reply in stub(json_format.ParseDict(request, request_class()), timeout=timeout):
            yield json_format.MessageToDict(reply, preserving_proto_field_name=True)
