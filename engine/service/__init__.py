"""The streaming service: prices and account events in, liquidation events out.

messages: the one ingest validation module (JSON bytes -> typed fixed-point messages).
loop: the pure service loop and its driver, over a record source and an event sink.
kafka_adapter / files_adapter: those interfaces over Kafka, JSON-lines files, memory.
snapshots: periodic Arrow snapshots and recovery; metrics: Prometheus text and status log.
serve_cli / inspect_cli: `clearing serve` and `clearing inspect`.
"""
