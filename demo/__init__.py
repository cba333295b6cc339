"""The demo app: what makes and drives worlds for the demo, the tests and the benches.

* ``catalog``: a synthetic catalog, when MovieLens is not at hand;
* ``movielens``: the MovieLens-100k loader (the real catalog and viewer base);
* ``accounts``: three advertiser accounts whose demand covers every targeting option;
* ``simulation``: the traffic simulator and its private ground truth;
* their commands: ``seed_demo``, ``load_movielens``, ``simulate_traffic``.

It sits on top of every other app and calls their services and HTTP endpoints like any
client; nothing imports it but ``bench/`` and ``tests/``. Everything is deterministic and
keyed on natural keys (external ids; an advertiser's slug; a campaign's, line item's or
creative's name within its advertiser), so a second run finds what the first one made and
creates nothing.
"""
