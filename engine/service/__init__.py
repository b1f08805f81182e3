"""The streaming service: prices and account events in, liquidation events out.

messages: the one ingest validation module (JSON bytes -> typed fixed-point messages).
ports: the records in and out, topic names, and the source / sink / journal protocols.
state: the service's settings, its snapshot state and per-tick stats.
tick: Service, one deterministic tick (events, prices and the band, sweep, waterfall).
outputs: the published documents of a tick and their ids.
driver: `run`, source -> service -> sink with the journal, snapshots and metrics.
kafka_common / kafka_batches / kafka_python / kafka_confluent: the ports over Kafka.
files_adapter: the ports over JSON-lines files, memory and a synthetic price path.
snapshots: periodic Arrow snapshots and recovery; snapshot_summary: a snapshot as text.
metrics: Prometheus text and the status log.
app: `serve(config)`, the service as `clearing serve` assembles and runs it.

Imports go one way: ports <- state <- outputs <- tick <- driver, snapshots, metrics <- app;
the Kafka and file adapters import ports (and each other), never the core.
"""
