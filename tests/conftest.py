from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401  (session fixture)
