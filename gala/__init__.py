"""gala: rehearse the 2016 Spring Festival Gala red-envelope night and plan its capacity.

This package holds the two ends of the layering (docs/architecture.md):
- `gala.cli`: the command line, on top; it may import every part, and nothing imports it;
- `gala.contract`: at the bottom, what every part shares (the results format, the YAML reader,
  errors and the exit-code table, atomic writes, the loopback rule, the phase-owner rule);
and one part in the middle, `gala.gate` (CI's latency budgets). The other parts are `loadtests`
(the rehearsal: Locust plugin, orchestrator, built-in target, swarm) and `capacity_model`.
"""

__version__ = "0.1.0"
