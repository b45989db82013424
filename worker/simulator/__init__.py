"""Built-in provider simulator: an OpenAI-compatible HTTP server backed by a rule-based model.

Tests, the demo and benchmarks use it in place of a paid provider.
"""

from worker.simulator.server import SimulatorSettings, create_app

__all__ = ["SimulatorSettings", "create_app"]
