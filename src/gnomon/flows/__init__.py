"""The authoring API and the run engine."""

from gnomon.flows._flow import Flow, flow
from gnomon.flows._flow_engine import execute_flow_run, load_flow

__all__ = ["Flow", "execute_flow_run", "flow", "load_flow"]
