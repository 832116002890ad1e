from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultSettings(_message.Message):
    __slots__ = ("error_rate", "delay_seconds", "methods", "delay_after_seconds", "rules")
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    DELAY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    error_rate: float
    delay_seconds: float
    methods: _containers.RepeatedScalarFieldContainer[str]
    delay_after_seconds: float
    rules: _containers.RepeatedCompositeFieldContainer[FaultRule]
    def __init__(self, error_rate: _Optional[float] = ..., delay_seconds: _Optional[float] = ..., methods: _Optional[_Iterable[str]] = ..., delay_after_seconds: _Optional[float] = ..., rules: _Optional[_Iterable[_Union[FaultRule, _Mapping]]] = ...) -> None: ...

class FaultRule(_message.Message):
    __slots__ = ("key_prefix", "methods", "error_rate", "delay_seconds", "delay_after_seconds", "times")
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DELAY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    key_prefix: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    error_rate: float
    delay_seconds: float
    delay_after_seconds: float
    times: int
    def __init__(self, key_prefix: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., error_rate: _Optional[float] = ..., delay_seconds: _Optional[float] = ..., delay_after_seconds: _Optional[float] = ..., times: _Optional[int] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
