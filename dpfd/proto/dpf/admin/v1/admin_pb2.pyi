from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("name", "address", "state", "incarnation", "role", "node", "version", "started", "addresses", "host", "pci")
    class AddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PCI_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    state: str
    incarnation: int
    role: str
    node: str
    version: str
    started: float
    addresses: _containers.ScalarMap[str, str]
    host: str
    pci: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[str] = ..., incarnation: _Optional[int] = ..., role: _Optional[str] = ..., node: _Optional[str] = ..., version: _Optional[str] = ..., started: _Optional[float] = ..., addresses: _Optional[_Mapping[str, str]] = ..., host: _Optional[str] = ..., pci: _Optional[str] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PacketStats(_message.Message):
    __slots__ = ("accepted", "forged", "replayed", "oversized", "malformed", "skewed")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FORGED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    OVERSIZED_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    SKEWED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    forged: int
    replayed: int
    oversized: int
    malformed: int
    skewed: int
    def __init__(self, accepted: _Optional[int] = ..., forged: _Optional[int] = ..., replayed: _Optional[int] = ..., oversized: _Optional[int] = ..., malformed: _Optional[int] = ..., skewed: _Optional[int] = ...) -> None: ...

class GossipStatus(_message.Message):
    __slots__ = ("enabled", "name", "address", "health_score", "alive", "suspect", "dead", "left", "packets")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_SCORE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    name: str
    address: str
    health_score: int
    alive: int
    suspect: int
    dead: int
    left: int
    packets: PacketStats
    def __init__(self, enabled: _Optional[bool] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., health_score: _Optional[int] = ..., alive: _Optional[int] = ..., suspect: _Optional[int] = ..., dead: _Optional[int] = ..., left: _Optional[int] = ..., packets: _Optional[_Union[PacketStats, _Mapping]] = ...) -> None: ...

class EtcdStatus(_message.Message):
    __slots__ = ("endpoints", "endpoint", "connected", "registered", "fencing_token", "registrations")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    endpoint: str
    connected: bool
    registered: bool
    fencing_token: int
    registrations: int
    def __init__(self, endpoints: _Optional[_Iterable[str]] = ..., endpoint: _Optional[str] = ..., connected: _Optional[bool] = ..., registered: _Optional[bool] = ..., fencing_token: _Optional[int] = ..., registrations: _Optional[int] = ...) -> None: ...

class DrainStatus(_message.Message):
    __slots__ = ("draining", "since", "reason", "in_flight", "node")
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    draining: bool
    since: float
    reason: str
    in_flight: int
    node: str
    def __init__(self, draining: _Optional[bool] = ..., since: _Optional[float] = ..., reason: _Optional[str] = ..., in_flight: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("node", "role", "version", "started", "gossip", "etcd", "ready", "intents", "busy", "drain", "dpus")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    ETCD_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    DPUS_FIELD_NUMBER: _ClassVar[int]
    node: str
    role: str
    version: str
    started: float
    gossip: GossipStatus
    etcd: EtcdStatus
    ready: bool
    intents: int
    busy: int
    drain: DrainStatus
    dpus: int
    def __init__(self, node: _Optional[str] = ..., role: _Optional[str] = ..., version: _Optional[str] = ..., started: _Optional[float] = ..., gossip: _Optional[_Union[GossipStatus, _Mapping]] = ..., etcd: _Optional[_Union[EtcdStatus, _Mapping]] = ..., ready: _Optional[bool] = ..., intents: _Optional[int] = ..., busy: _Optional[int] = ..., drain: _Optional[_Union[DrainStatus, _Mapping]] = ..., dpus: _Optional[int] = ...) -> None: ...

class ListDpusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Condition(_message.Message):
    __slots__ = ("type", "status", "reason", "message", "last_transition_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str
    def __init__(self, type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., last_transition_time: _Optional[str] = ...) -> None: ...

class PhaseEntry(_message.Message):
    __slots__ = ("phase", "at")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    at: float
    def __init__(self, phase: _Optional[str] = ..., at: _Optional[float] = ...) -> None: ...

class StepProgress(_message.Message):
    __slots__ = ("step", "done", "total")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    step: str
    done: int
    total: int
    def __init__(self, step: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class DpuError(_message.Message):
    __slots__ = ("phase", "reason", "message", "at")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    reason: str
    message: str
    at: float
    def __init__(self, phase: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., at: _Optional[float] = ...) -> None: ...

class Dpu(_message.Message):
    __slots__ = ("name", "namespace", "node", "pci_address", "bfb", "flavor", "dpu_set", "phase", "conditions", "history", "error", "attempts", "retry_at", "progress", "generation", "observed_generation", "lock_token", "deleting", "held", "updated_at", "has_intent", "events")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PCI_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BFB_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    DPU_SET_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    LOCK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DELETING_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_INTENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    node: str
    pci_address: str
    bfb: str
    flavor: str
    dpu_set: str
    phase: str
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    history: _containers.RepeatedCompositeFieldContainer[PhaseEntry]
    error: DpuError
    attempts: int
    retry_at: float
    progress: StepProgress
    generation: int
    observed_generation: int
    lock_token: int
    deleting: bool
    held: bool
    updated_at: str
    has_intent: bool
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., node: _Optional[str] = ..., pci_address: _Optional[str] = ..., bfb: _Optional[str] = ..., flavor: _Optional[str] = ..., dpu_set: _Optional[str] = ..., phase: _Optional[str] = ..., conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[PhaseEntry, _Mapping]]] = ..., error: _Optional[_Union[DpuError, _Mapping]] = ..., attempts: _Optional[int] = ..., retry_at: _Optional[float] = ..., progress: _Optional[_Union[StepProgress, _Mapping]] = ..., generation: _Optional[int] = ..., observed_generation: _Optional[int] = ..., lock_token: _Optional[int] = ..., deleting: _Optional[bool] = ..., held: _Optional[bool] = ..., updated_at: _Optional[str] = ..., has_intent: _Optional[bool] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class ListDpusResponse(_message.Message):
    __slots__ = ("dpus",)
    DPUS_FIELD_NUMBER: _ClassVar[int]
    dpus: _containers.RepeatedCompositeFieldContainer[Dpu]
    def __init__(self, dpus: _Optional[_Iterable[_Union[Dpu, _Mapping]]] = ...) -> None: ...

class GetDpuRequest(_message.Message):
    __slots__ = ("name", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class ListIntentsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class IntentEntry(_message.Message):
    __slots__ = ("kind", "namespace", "name", "generation", "deleting", "error", "phase", "observed_generation", "updated_at", "intent_json", "report_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DELETING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INTENT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    namespace: str
    name: str
    generation: int
    deleting: bool
    error: str
    phase: str
    observed_generation: int
    updated_at: str
    intent_json: str
    report_json: str
    def __init__(self, kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., generation: _Optional[int] = ..., deleting: _Optional[bool] = ..., error: _Optional[str] = ..., phase: _Optional[str] = ..., observed_generation: _Optional[int] = ..., updated_at: _Optional[str] = ..., intent_json: _Optional[str] = ..., report_json: _Optional[str] = ...) -> None: ...

class ListIntentsResponse(_message.Message):
    __slots__ = ("intents",)
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    intents: _containers.RepeatedCompositeFieldContainer[IntentEntry]
    def __init__(self, intents: _Optional[_Iterable[_Union[IntentEntry, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("replay", "kind", "name")
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    replay: bool
    kind: str
    name: str
    def __init__(self, replay: _Optional[bool] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("at", "type", "kind", "namespace", "name", "phase", "previous_phase", "message", "missed", "progress", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    at: float
    type: str
    kind: str
    namespace: str
    name: str
    phase: str
    previous_phase: str
    message: str
    missed: int
    progress: StepProgress
    fields: _containers.ScalarMap[str, str]
    def __init__(self, at: _Optional[float] = ..., type: _Optional[str] = ..., kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., phase: _Optional[str] = ..., previous_phase: _Optional[str] = ..., message: _Optional[str] = ..., missed: _Optional[int] = ..., progress: _Optional[_Union[StepProgress, _Mapping]] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StreamLogsRequest(_message.Message):
    __slots__ = ("follow", "tail")
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    follow: bool
    tail: int
    def __init__(self, follow: _Optional[bool] = ..., tail: _Optional[int] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("at", "level", "logger", "line", "missed")
    AT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    at: float
    level: str
    logger: str
    line: str
    missed: int
    def __init__(self, at: _Optional[float] = ..., level: _Optional[str] = ..., logger: _Optional[str] = ..., line: _Optional[str] = ..., missed: _Optional[int] = ...) -> None: ...

class DpuActionRequest(_message.Message):
    __slots__ = ("name", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class DpuActionResponse(_message.Message):
    __slots__ = ("name", "namespace", "action", "request_id", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    action: str
    request_id: str
    message: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., action: _Optional[str] = ..., request_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class UndrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
