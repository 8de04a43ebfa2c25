"""The project's own upstream simulator, used by demo, tests and benchmarks alike: it
stands apart from the gateway, as a real upstream would.

May import: core only (token counting)."""

from gateway.simulator.app import SIMULATOR, Simulator, create_simulator
from gateway.simulator.records import Record
from gateway.simulator.settings import Fault, SimulatorSettings

__all__ = ["SIMULATOR", "Fault", "Record", "Simulator", "SimulatorSettings", "create_simulator"]
