from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReserveRequest(_message.Message):
    __slots__ = ("idempotency_key", "sku", "quantity")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    sku: str
    quantity: int
    def __init__(self, idempotency_key: _Optional[str] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class ReserveReply(_message.Message):
    __slots__ = ("reserved", "reason", "stock")
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    reserved: bool
    reason: str
    stock: StockLevel
    def __init__(self, reserved: _Optional[bool] = ..., reason: _Optional[str] = ..., stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class ReservationRef(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class SetStockRequest(_message.Message):
    __slots__ = ("sku", "on_hand")
    SKU_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    sku: str
    on_hand: int
    def __init__(self, sku: _Optional[str] = ..., on_hand: _Optional[int] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("sku",)
    SKU_FIELD_NUMBER: _ClassVar[int]
    sku: str
    def __init__(self, sku: _Optional[str] = ...) -> None: ...

class StockLevel(_message.Message):
    __slots__ = ("sku", "on_hand", "reserved", "available")
    SKU_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    on_hand: int
    reserved: int
    available: int
    def __init__(self, sku: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...
