from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthorizeRequest(_message.Message):
    __slots__ = ("idempotency_key", "customer_id", "amount_cents")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    customer_id: str
    amount_cents: int
    def __init__(self, idempotency_key: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount_cents: _Optional[int] = ...) -> None: ...

class PaymentRef(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class PaymentReply(_message.Message):
    __slots__ = ("approved", "state", "reason", "credit")
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    approved: bool
    state: str
    reason: str
    credit: Credit
    def __init__(self, approved: _Optional[bool] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., credit: _Optional[_Union[Credit, _Mapping]] = ...) -> None: ...

class SetCreditRequest(_message.Message):
    __slots__ = ("customer_id", "limit_cents")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_CENTS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    limit_cents: int
    def __init__(self, customer_id: _Optional[str] = ..., limit_cents: _Optional[int] = ...) -> None: ...

class GetCreditRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class Credit(_message.Message):
    __slots__ = ("customer_id", "limit_cents", "held_cents", "captured_cents", "available_cents")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_CENTS_FIELD_NUMBER: _ClassVar[int]
    HELD_CENTS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_CENTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_CENTS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    limit_cents: int
    held_cents: int
    captured_cents: int
    available_cents: int
    def __init__(self, customer_id: _Optional[str] = ..., limit_cents: _Optional[int] = ..., held_cents: _Optional[int] = ..., captured_cents: _Optional[int] = ..., available_cents: _Optional[int] = ...) -> None: ...
