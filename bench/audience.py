"""The simulated audience of `make demo` against a running server: what it asks of the web
process, path by path and minute by minute, and what that costs the server's CPU.

    python bench/audience.py --base-url http://127.0.0.1:8731 --server-pid PID \\
        [--viewers 600] [--minutes 5] [--seed 7]

Run it with the server's own settings (DATABASE_URL, REDIS_URL or the embedded default) on a
world set up as make demo does (`manage.py setup_demo`), the server started like Procfile.demo's
`web:` (its per-address ad tag limit raised). The audience is `simulate_traffic --live`'s
(demo/simulation/live.py) with its requests counted by path; the server's CPU is read from
/proc for the pid given. The first minutes are the audience's arrival (every viewer binds its
profile and starts a session within two minutes, most with a pre-roll); later minutes show its
steady state.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _cpu  # noqa: E402
import _scratch  # noqa: E402


def _path_key(path: str) -> str:
    if path.startswith("/t/"):
        return "/t/<token>/<event> (trackers)"
    if path.endswith("/events"):
        return "/watch/api/sessions/<id>/events"
    if path.startswith("/watch/profiles/"):
        return "/watch/profiles/<id>"
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="The running server (make bench: skipped without).")
    parser.add_argument("--server-pid", type=int, help="Its process id, for its CPU.")
    parser.add_argument("--viewers", type=int, default=600)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not (args.base_url and args.server_pid):
        print("skipped: give a running server (--base-url) and its process id (--server-pid)")
        return 0

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import httpx2

    from ads import services as ads_services
    from demo.simulation import AUDIENCE_PLAYER, LiveOptions, World, simulate_live

    logging.getLogger("httpx2").setLevel(logging.WARNING)
    server_pid = args.server_pid

    class Counting(httpx2.HTTPTransport):
        """Counts each request by path and minute; notes the server's CPU at each minute."""

        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()
            self.by_minute: dict[int, Counter[str]] = defaultdict(Counter)
            self.server_cpu = [(0.0, _cpu.tree_seconds(server_pid))]

        def handle_request(self, request):
            elapsed = time.monotonic() - self.started
            if int(elapsed // 60) >= len(self.server_cpu):
                self.server_cpu.append((elapsed, _cpu.tree_seconds(server_pid)))
            self.by_minute[int(elapsed // 60)][_path_key(request.url.path)] += 1
            return super().handle_request(request)

    print(_scratch.machine_reference())
    ads_services.player_ensure(public_id=AUDIENCE_PLAYER, name="Simulated audience (demo)")
    world = World.load(seed=args.seed)
    transport = Counting()
    options = LiveOptions(
        base_url=args.base_url, viewers=args.viewers, minutes=args.minutes, seed=args.seed
    )
    own_before = time.process_time()
    with _cpu.Meter() as meter:
        result = simulate_live(world, options, transport=transport)
    own = time.process_time() - own_before
    wall = meter.usage.seconds
    marks = [*transport.server_cpu, (wall, _cpu.tree_seconds(server_pid))]
    print(result.summary())
    print(f"\n{args.viewers} viewers for {args.minutes:g} min against {args.base_url}")
    total: Counter[str] = Counter()
    for (minute, counts), (start, before), (end, after) in zip(
        sorted(transport.by_minute.items()), marks, marks[1:], strict=False
    ):
        total += counts
        requests = sum(counts.values())
        cpu, seconds = after - before, max(end - start, 1e-9)
        print(
            f"  minute {minute}: {requests:5d} requests ({requests / 60:5.1f}/s), server CPU "
            f"{cpu:5.1f} s ({cpu / seconds:4.0%} of a core, "
            f"{cpu / (args.viewers * seconds / 60) * 1000:5.1f} ms per viewer-minute)"
        )
        print("    " + ", ".join(f"{path} {n}" for path, n in counts.most_common()))
    requests = sum(total.values())
    server = marks[-1][1] - marks[0][1]
    print(
        f"  all: {requests} requests in {wall:.0f} s ({requests / wall:.1f}/s), server CPU "
        f"{server:.1f} s ({server / requests * 1000:.2f} ms a request), the audience's own CPU "
        f"{own:.1f} s ({own / wall:.0%} of a core)"
    )
    print(f"  ({meter.usage.describe()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
