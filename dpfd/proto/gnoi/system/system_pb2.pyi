from dpfd.proto.gnoi.types import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RebootMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[RebootMethod]
    COLD: _ClassVar[RebootMethod]
    POWERDOWN: _ClassVar[RebootMethod]
    HALT: _ClassVar[RebootMethod]
    WARM: _ClassVar[RebootMethod]
    NSF: _ClassVar[RebootMethod]
    POWERUP: _ClassVar[RebootMethod]
UNKNOWN: RebootMethod
COLD: RebootMethod
POWERDOWN: RebootMethod
HALT: RebootMethod
WARM: RebootMethod
NSF: RebootMethod
POWERUP: RebootMethod

class RebootRequest(_message.Message):
    __slots__ = ("method", "delay", "message", "subcomponents", "force")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUBCOMPONENTS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    method: RebootMethod
    delay: int
    message: str
    subcomponents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Path]
    force: bool
    def __init__(self, method: _Optional[_Union[RebootMethod, str]] = ..., delay: _Optional[int] = ..., message: _Optional[str] = ..., subcomponents: _Optional[_Iterable[_Union[_types_pb2.Path, _Mapping]]] = ..., force: _Optional[bool] = ...) -> None: ...

class RebootResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelRebootRequest(_message.Message):
    __slots__ = ("message", "subcomponents")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUBCOMPONENTS_FIELD_NUMBER: _ClassVar[int]
    message: str
    subcomponents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Path]
    def __init__(self, message: _Optional[str] = ..., subcomponents: _Optional[_Iterable[_Union[_types_pb2.Path, _Mapping]]] = ...) -> None: ...

class CancelRebootResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RebootStatusRequest(_message.Message):
    __slots__ = ("subcomponents",)
    SUBCOMPONENTS_FIELD_NUMBER: _ClassVar[int]
    subcomponents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Path]
    def __init__(self, subcomponents: _Optional[_Iterable[_Union[_types_pb2.Path, _Mapping]]] = ...) -> None: ...

class RebootStatusResponse(_message.Message):
    __slots__ = ("active", "wait", "when", "reason", "count", "method", "status")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    active: bool
    wait: int
    when: int
    reason: str
    count: int
    method: RebootMethod
    status: RebootStatus
    def __init__(self, active: _Optional[bool] = ..., wait: _Optional[int] = ..., when: _Optional[int] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ..., method: _Optional[_Union[RebootMethod, str]] = ..., status: _Optional[_Union[RebootStatus, _Mapping]] = ...) -> None: ...

class RebootStatus(_message.Message):
    __slots__ = ("status", "message")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNKNOWN: _ClassVar[RebootStatus.Status]
        STATUS_SUCCESS: _ClassVar[RebootStatus.Status]
        STATUS_RETRIABLE_FAILURE: _ClassVar[RebootStatus.Status]
        STATUS_FAILURE: _ClassVar[RebootStatus.Status]
    STATUS_UNKNOWN: RebootStatus.Status
    STATUS_SUCCESS: RebootStatus.Status
    STATUS_RETRIABLE_FAILURE: RebootStatus.Status
    STATUS_FAILURE: RebootStatus.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: RebootStatus.Status
    message: str
    def __init__(self, status: _Optional[_Union[RebootStatus.Status, str]] = ..., message: _Optional[str] = ...) -> None: ...

class TimeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TimeResponse(_message.Message):
    __slots__ = ("time",)
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: int
    def __init__(self, time: _Optional[int] = ...) -> None: ...
