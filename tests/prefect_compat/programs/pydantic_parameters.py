"""A pydantic model as a flow parameter, built from a dict (pass-inputs)."""

from prefect import flow
from pydantic import BaseModel


class Config(BaseModel):
    vendor: str
    limit: int = 10


@flow
def ingest(config: Config) -> str:
    return f"{type(config).__name__}: {config.vendor} {config.limit}"


print(ingest({"vendor": "acme"}))
print(ingest(Config(vendor="globex", limit=3)))
print(ingest({"vendor": "initech", "limit": "4"}))
try:
    ingest({"limit": 1})
except Exception as error:
    print("invalid:", type(error).__name__, "| names the field:", "vendor" in str(error))
