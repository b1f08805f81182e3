import os

from hypothesis import settings

from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401  (session fixture)

# CI runs every property test on a fixed sequence of examples (a red CI run is then a real,
# reproducible failure of the code, not of the draw); a developer's run explores new
# examples each time. HYPOTHESIS_PROFILE=dev on CI explores too.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
