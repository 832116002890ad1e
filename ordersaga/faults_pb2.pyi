from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FaultSettings(_message.Message):
    __slots__ = ("error_rate", "delay_seconds")
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    error_rate: float
    delay_seconds: float
    def __init__(self, error_rate: _Optional[float] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
