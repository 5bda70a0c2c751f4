"""get_run_logger, seen by a handler on the root logger as caplog sees it (add-logging)."""

import logging

from prefect import flow, get_run_logger, task


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


collected = Collect()
logging.getLogger().addHandler(collected)


@task
def transform(x: int) -> int:
    logger = get_run_logger()
    logger.info("transforming %s", x)
    logger.warning("careful with %s", x)
    return x + 1


@flow(flow_run_name="logging-demo")
def pipeline() -> int:
    logger = get_run_logger()
    logger.info("starting")
    logger.debug("debug is below the default level")
    result = transform(1)
    logger.error("finished with %s", result)
    return result


print(pipeline())
messages = [record.getMessage() for record in collected.records]
for record in collected.records:
    if record.getMessage() in {"starting", "transforming 1", "careful with 1", "finished with 2"}:
        print(record.levelname, record.getMessage())
print("debug seen:", "debug is below the default level" in messages)
print("each message once:", messages.count("starting") == 1)
print("final state logged:", any("Finished in state Completed()" in m for m in messages))
try:
    get_run_logger()
except Exception as error:
    print(type(error).__name__)
