"""The project's own upstream simulator, used by demo, tests and benchmarks alike."""

from gateway.simulator.app import SIMULATOR, Record, Simulator, create_simulator
from gateway.simulator.settings import Fault, SimulatorSettings

__all__ = ["SIMULATOR", "Fault", "Record", "Simulator", "SimulatorSettings", "create_simulator"]
