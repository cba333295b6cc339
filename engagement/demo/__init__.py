"""The demo world of ``manage.py seed_demo``: a synthetic catalog (`catalog`, when MovieLens is
not at hand) and three advertiser accounts whose demand covers every targeting option
(`accounts`).

Everything is deterministic and keyed on natural keys (external ids; an advertiser's slug; a
campaign's, line item's or creative's name within its advertiser), so a second run finds what
the first one made and creates nothing.
"""
