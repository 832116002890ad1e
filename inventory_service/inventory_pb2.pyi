from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class Line(_message.Message):
    __slots__ = ("sku", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class ReserveLinesRequest(_message.Message):
    __slots__ = ("idempotency_key", "lines")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    def __init__(self, idempotency_key: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ...) -> None: ...

class LineOutcome(_message.Message):
    __slots__ = ("sku", "done", "reason")
    SKU_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    sku: str
    done: bool
    reason: str
    def __init__(self, sku: _Optional[str] = ..., done: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class LinesReply(_message.Message):
    __slots__ = ("done", "reason", "lines")
    DONE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    done: bool
    reason: str
    lines: _containers.RepeatedCompositeFieldContainer[LineOutcome]
    def __init__(self, done: _Optional[bool] = ..., reason: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LineOutcome, _Mapping]]] = ...) -> None: ...

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
