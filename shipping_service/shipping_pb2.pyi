from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateShipmentRequest(_message.Message):
    __slots__ = ("idempotency_key", "order_id", "customer_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    order_id: str
    customer_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ...) -> None: ...

class ShipmentRef(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class Shipment(_message.Message):
    __slots__ = ("order_id", "tracking_number", "state")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    tracking_number: str
    state: str
    def __init__(self, order_id: _Optional[str] = ..., tracking_number: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...
