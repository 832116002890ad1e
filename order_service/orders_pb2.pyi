from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LineItem(_message.Message):
    __slots__ = ("sku", "quantity", "unit_price_cents")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    unit_price_cents: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_cents: _Optional[int] = ...) -> None: ...

class PlaceOrderRequest(_message.Message):
    __slots__ = ("order_id", "customer_id", "items")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ...) -> None: ...

class PlaceOrderResponse(_message.Message):
    __slots__ = ("order_id", "status")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: str
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetryOrderRequest(_message.Message):
    __slots__ = ("order_id", "operator")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    operator: str
    def __init__(self, order_id: _Optional[str] = ..., operator: _Optional[str] = ...) -> None: ...

class CloseOrderRequest(_message.Message):
    __slots__ = ("order_id", "operator", "note")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    operator: str
    note: str
    def __init__(self, order_id: _Optional[str] = ..., operator: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class OrderFilter(_message.Message):
    __slots__ = ("status", "customer_id", "reason", "placed_after", "placed_before", "saga_version", "in_status_for_s", "stuck", "text")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLACED_AFTER_FIELD_NUMBER: _ClassVar[int]
    PLACED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SAGA_VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_STATUS_FOR_S_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    status: str
    customer_id: str
    reason: str
    placed_after: str
    placed_before: str
    saga_version: str
    in_status_for_s: int
    stuck: bool
    text: str
    def __init__(self, status: _Optional[str] = ..., customer_id: _Optional[str] = ..., reason: _Optional[str] = ..., placed_after: _Optional[str] = ..., placed_before: _Optional[str] = ..., saga_version: _Optional[str] = ..., in_status_for_s: _Optional[int] = ..., stuck: _Optional[bool] = ..., text: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token", "customer_id", "reason", "placed_after", "placed_before", "saga_version", "in_status_for_s", "stuck", "text")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLACED_AFTER_FIELD_NUMBER: _ClassVar[int]
    PLACED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SAGA_VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_STATUS_FOR_S_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    status: str
    page_size: int
    page_token: str
    customer_id: str
    reason: str
    placed_after: str
    placed_before: str
    saga_version: str
    in_status_for_s: int
    stuck: bool
    text: str
    def __init__(self, status: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., customer_id: _Optional[str] = ..., reason: _Optional[str] = ..., placed_after: _Optional[str] = ..., placed_before: _Optional[str] = ..., saga_version: _Optional[str] = ..., in_status_for_s: _Optional[int] = ..., stuck: _Optional[bool] = ..., text: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token", "total_matching", "counts_by_status")
    class CountsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MATCHING_FIELD_NUMBER: _ClassVar[int]
    COUNTS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    total_matching: int
    counts_by_status: _containers.ScalarMap[str, int]
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_matching: _Optional[int] = ..., counts_by_status: _Optional[_Mapping[str, int]] = ...) -> None: ...

class BulkActionRequest(_message.Message):
    __slots__ = ("action", "filter", "operator", "note", "dry_run", "confirm_count", "rate_per_s")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    action: str
    filter: OrderFilter
    operator: str
    note: str
    dry_run: bool
    confirm_count: int
    rate_per_s: float
    def __init__(self, action: _Optional[str] = ..., filter: _Optional[_Union[OrderFilter, _Mapping]] = ..., operator: _Optional[str] = ..., note: _Optional[str] = ..., dry_run: _Optional[bool] = ..., confirm_count: _Optional[int] = ..., rate_per_s: _Optional[float] = ...) -> None: ...

class BulkOrderResult(_message.Message):
    __slots__ = ("order_id", "status", "outcome", "detail")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: str
    outcome: str
    detail: str
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class BulkAction(_message.Message):
    __slots__ = ("bulk_id", "action", "state", "selected", "done", "changed", "skipped", "failed", "results", "next_page_token", "started_at", "finished_at", "filter", "rate_per_s", "left_alone", "operator")
    BULK_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    LEFT_ALONE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    bulk_id: str
    action: str
    state: str
    selected: int
    done: int
    changed: int
    skipped: int
    failed: int
    results: _containers.RepeatedCompositeFieldContainer[BulkOrderResult]
    next_page_token: str
    started_at: str
    finished_at: str
    filter: str
    rate_per_s: float
    left_alone: int
    operator: str
    def __init__(self, bulk_id: _Optional[str] = ..., action: _Optional[str] = ..., state: _Optional[str] = ..., selected: _Optional[int] = ..., done: _Optional[int] = ..., changed: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., results: _Optional[_Iterable[_Union[BulkOrderResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., filter: _Optional[str] = ..., rate_per_s: _Optional[float] = ..., left_alone: _Optional[int] = ..., operator: _Optional[str] = ...) -> None: ...

class GetBulkActionRequest(_message.Message):
    __slots__ = ("bulk_id", "page_size", "page_token")
    BULK_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bulk_id: str
    page_size: int
    page_token: str
    def __init__(self, bulk_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBulkActionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBulkActionsResponse(_message.Message):
    __slots__ = ("bulk_actions",)
    BULK_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    bulk_actions: _containers.RepeatedCompositeFieldContainer[BulkAction]
    def __init__(self, bulk_actions: _Optional[_Iterable[_Union[BulkAction, _Mapping]]] = ...) -> None: ...

class WatchOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("at", "step", "outcome", "detail")
    AT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    at: str
    step: str
    outcome: str
    detail: str
    def __init__(self, at: _Optional[str] = ..., step: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "customer_id", "status", "reason", "total_cents", "saga_instance_id", "saga_runtime_status", "timeline", "items", "tracking_number", "placed_at", "status_since", "saga_version", "stuck_reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CENTS_FIELD_NUMBER: _ClassVar[int]
    SAGA_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SAGA_RUNTIME_STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_SINCE_FIELD_NUMBER: _ClassVar[int]
    SAGA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STUCK_REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    status: str
    reason: str
    total_cents: int
    saga_instance_id: str
    saga_runtime_status: str
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineEntry]
    items: _containers.RepeatedCompositeFieldContainer[LineItem]
    tracking_number: str
    placed_at: str
    status_since: str
    saga_version: str
    stuck_reason: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., total_cents: _Optional[int] = ..., saga_instance_id: _Optional[str] = ..., saga_runtime_status: _Optional[str] = ..., timeline: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ..., items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., tracking_number: _Optional[str] = ..., placed_at: _Optional[str] = ..., status_since: _Optional[str] = ..., saga_version: _Optional[str] = ..., stuck_reason: _Optional[str] = ...) -> None: ...
