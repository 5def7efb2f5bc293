"""The scenario format: the typed model of a rehearsal (`model.py`) and its loader (`load.py`).

Read by every program of the rehearsal (the orchestrator, the Locust plugin, the swarm) and by the
CLI; imports neither Locust nor gevent. The packaged scenario files are in `loadtests/scenarios/`.
"""

from loadtests.scenario.load import load_scenario
from loadtests.scenario.model import (BUILTIN, DEFAULT_SCENARIO, PACKAGED_DIR, AdminCall, LinkSpec, PacingKind,
                                      PhasePlan, PhaseSpec, RequestSpec, Scenario, ScenarioError, TargetSpec,
                                      UserSpec)

__all__ = ["load_scenario", "BUILTIN", "DEFAULT_SCENARIO", "PACKAGED_DIR", "AdminCall", "LinkSpec", "PacingKind",
           "PhasePlan", "PhaseSpec", "RequestSpec", "Scenario", "ScenarioError", "TargetSpec", "UserSpec"]
