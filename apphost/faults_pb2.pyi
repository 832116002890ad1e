from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FaultSettings(_message.Message):
    __slots__ = ("error_rate", "delay_seconds", "methods", "delay_after_seconds")
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    DELAY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    error_rate: float
    delay_seconds: float
    methods: _containers.RepeatedScalarFieldContainer[str]
    delay_after_seconds: float
    def __init__(self, error_rate: _Optional[float] = ..., delay_seconds: _Optional[float] = ..., methods: _Optional[_Iterable[str]] = ..., delay_after_seconds: _Optional[float] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
