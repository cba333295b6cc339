"""The traffic simulator: a viewer population that watches titles, reaches ad breaks, asks
the real decision engine and fires the real tracking events (``manage.py simulate_traffic``).

* ``world``: the catalog as the simulator sees it, and the audience's seeded habits (who
  watches what, on which screen, when).
* ``sessions``: one viewing session as a timeline of player actions and ad pods.
* ``truth``: the ground truth of clicks and completions. Private: nothing outside this package
  imports it.
* ``history``: the days before now, in-process on a simulated clock.
* ``live``: now, at wall-clock pace, through a running server's viewer app and ad tags.
* ``recording``: tallies, the sessions written (history), the truth file.
"""

from demo.simulation.history import HistoryOptions, simulate_history
from demo.simulation.live import AUDIENCE_PLAYER, LiveOptions, LiveSimulationError, simulate_live
from demo.simulation.recording import TRUTH_COLUMNS, SimulationResult
from demo.simulation.world import World

__all__ = [
    "AUDIENCE_PLAYER",
    "TRUTH_COLUMNS",
    "HistoryOptions",
    "LiveOptions",
    "LiveSimulationError",
    "SimulationResult",
    "World",
    "simulate_history",
    "simulate_live",
]
