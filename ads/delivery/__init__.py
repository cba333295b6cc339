"""The delivery state that the decision engine, the event path and the dashboards share:
counters (`counters`: Redis, a SQLite file every local process shares, or one process's
memory), the keys they are kept under and how long each lives (`keys`: no key string is built
anywhere else), the signed tracking tokens of ad events (`tokens`) and the per-minute decision
latency histograms (`latency`). Other apps reach it through `ads.selectors` and
`ads.services`."""
