"""Why input was refused: one enum of stable codes, so a dead-letter consumer can count them.

Every `Rejected` carries one of these. The value is the wire form (dead-letter records,
metrics labels, error lines); the names never change meaning once published.
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    # ----- input shape (files, messages, arguments)
    MALFORMED_JSON = "malformed_json"
    TOO_LARGE = "too_large"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_TOPIC = "unknown_topic"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_OPTION = "unsupported_option"
    KEY_MISMATCH = "key_mismatch"
    MISSING_FIELD = "missing_field"
    MISSING_FILE = "missing_file"
    MISSING_COLUMN = "missing_column"
    MISSING_VALUE = "missing_value"
    DUPLICATE_FIELD = "duplicate_field"
    TOO_DEEP = "too_deep"
    INVALID_FIELD = "invalid_field"
    INVALID_FILE = "invalid_file"
    INVALID_TYPE = "invalid_type"
    INVALID_INPUT = "invalid_input"
    INVALID_ARGUMENTS = "invalid_arguments"
    INVALID_OUT = "invalid_out"
    INVALID_PROFILE = "invalid_profile"
    INVALID_SCENARIO = "invalid_scenario"
    INVALID_DIRECTION = "invalid_direction"
    INVALID_TOLERANCE = "invalid_tolerance"
    INVALID_SNAPSHOT = "invalid_snapshot"
    INVALID_DATE = "invalid_date"
    # ----- values
    INVALID_VALUE = "invalid_value"
    OFF_GRID = "off_grid"
    OUT_OF_RANGE = "out_of_range"
    OVERFLOW = "overflow"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_PRICE = "invalid_price"
    INVALID_QTY = "invalid_qty"
    INVALID_COST = "invalid_cost"
    INVALID_LEVERAGE = "invalid_leverage"
    INVALID_FUNDING = "invalid_funding"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_SEQUENCE = "invalid_sequence"
    INVALID_EVENT_ID = "invalid_event_id"
    # ----- references
    INVALID_ACCOUNT = "invalid_account"
    INVALID_ACCOUNTS = "invalid_accounts"
    UNKNOWN_ACCOUNT = "unknown_account"
    RESERVED_ACCOUNT = "reserved_account"
    DUPLICATE_ACCOUNT = "duplicate_account"
    UNKNOWN_SYMBOL = "unknown_symbol"
    DUPLICATE_SYMBOL = "duplicate_symbol"
    DUPLICATE_POSITION = "duplicate_position"
    UNKNOWN_ASSET = "unknown_asset"  # a collateral asset the profile does not list
    INSUFFICIENT_COLLATERAL = "insufficient_collateral"  # withdrawing more than is held
    NOT_ISOLATED = "not_isolated"  # an isolated-margin operation on a cross account
    NOT_OWNED = "not_owned"
    NOT_PERPETUAL = "not_perpetual"
    NO_MARK = "no_mark"
    # ----- state and order
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    STALE_SEQUENCE = "stale_sequence"
    INVALID_TRADE = "invalid_trade"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    PRICE_OUT_OF_BAND = "price_out_of_band"
    LIMIT_EXCEEDED = "limit_exceeded"
    LEVERAGE_ABOVE_MAX = "leverage_above_max"
    # ----- settlement
    ALREADY_SETTLED = "already_settled"
    DATE_OUT_OF_ORDER = "date_out_of_order"
    GROUP_UNSETTLED = "group_unsettled"
    NO_SETTLEMENT_PRICE = "no_settlement_price"
    NO_FUNDING_RATE = "no_funding_rate"
    # ----- futures exchange conventions (engine.exchange)
    INVALID_MARGIN_CHANGE = "invalid_margin_change"
    INVALID_ACCOUNT_CLASS = "invalid_account_class"
    NO_PRICE_LIMIT = "no_price_limit"
    # ----- the service's last line of defence: applying the record raised (a bug); the
    # record is dead-lettered and the state rolled back to before it
    INTERNAL_ERROR = "internal_error"
