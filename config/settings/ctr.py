"""How the decision engine uses the CTR champion (`ads.decisioning.engine._model_scored`).

CTR_SLOT_RANKING: score the head of the ranking again at the pod's later slots
(`ads.decisioning.scoring.rank_by_slot`), so that a CPC line item's value at slot 3 is its
pCTR at position 3. Off by default: it is a second model call per decision (measured with
bench/decisions.py BENCH_CTR_MODELS, README), and its gain in revenue or clicks has not been
measured (an AUC cannot show it: it changes which line item gets which slot, not how rows are
ranked). With it off, every candidate is scored at position 1, as before feature layout 3.

CTR_FOREST_SCORING: score a LightGBM champion's candidates with its trees as numpy arrays
(`ads.decisioning.scoring.forest_ranking`: the booster's own scores, bit for bit, and the same
ranking; a test compares them) instead of the booster's predict. On by default; off is the
booster's path, for comparison (bench/decisions.py measures both). Slot ranking always takes
the booster's path.
"""

from config.settings.env import env

CTR_SLOT_RANKING = env.bool("CTR_SLOT_RANKING", default=False)
CTR_FOREST_SCORING = env.bool("CTR_FOREST_SCORING", default=True)
