"""The engine's CPU per decision in a process of its own, from the source tree named on the
command line: bench/decisions.py runs it on this tree and on a baseline checkout
(BENCH_BASELINE_PATH), in turns, on the same requests, database and Redis, so old and new are
measured under the same load.

    python bench/_engine_cpu.py TREE REQUESTS.json WARM_UP
    (environment: the bench's DATABASE_URL, REDIS_URL, DJANGO_SETTINGS_MODULE, ...)

Prints one JSON line: {"cpu_ms": CPU per decision, "p99_ms": latency, "decisions": n}.
"""

import json
import os
import random
import sys
import time


def main() -> None:
    tree, requests_path, warm_up = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, tree)
    os.chdir(tree)
    import django

    django.setup()
    from ads import services

    with open(requests_path) as requests_file:
        requests = [services.DecisionRequest(**fields) for fields in json.load(requests_file)]
    rng = random.Random(7)
    for request in requests[:warm_up]:  # the index, state, connections, scripts
        services.decide(request, rng=rng)
    measured = requests[warm_up:]
    latencies = []
    began = time.process_time()
    for request in measured:
        started = time.perf_counter()
        services.decide(request, rng=rng)
        latencies.append(time.perf_counter() - started)
    cpu = time.process_time() - began
    latencies.sort()
    print(
        json.dumps(
            {
                "cpu_ms": cpu / len(measured) * 1000,
                "p99_ms": latencies[int(0.99 * len(latencies))] * 1000,
                "decisions": len(measured),
            }
        )
    )


if __name__ == "__main__":
    main()
