"""Queue depth for 50 priority queues: the console's one pipeline vs one call per key vs kombu per queue."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import date

from harness import bench_stack, measure, percentile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    with bench_stack() as server:
        import redis

        from taskops import broker
        from taskops.conf import celery_app

        app = celery_app()
        names = [f"bench-q{i:02d}" for i in range(args.queues)]
        with app.connection_for_write() as conn:
            for i, name in enumerate(names):
                for priority in (0, 3, 6, 9)[: 1 + i % 4]:
                    for _ in range(5):
                        app.send_task("demo.tasks.generate_report", args=["bench"], queue=name,
                                      priority=priority, connection=conn)
        steps = (0, 3, 6, 9)
        keys = [name if step == 0 else f"{name}\x06\x16{step}" for name in names for step in steps]
        client = redis.Redis.from_url(server.url)

        def one_call_per_key() -> int:
            return sum(client.llen(key) for key in keys)

        def kombu_passive_declare_per_queue() -> int:
            with app.connection_for_write() as conn:
                channel = conn.default_channel
                return sum(channel.queue_declare(queue=n, passive=True).message_count for n in names)

        def console_depths_only() -> int:
            reading = broker.queue_depths(names, discover=False)
            return sum(q.depth for q in reading.queues.values())

        def console_full_reading() -> int:
            reading = broker.queue_depths(names, discover=True)
            return sum(q.depth for q in reading.queues.values())

        expected = one_call_per_key()
        methods = {
            "one LLEN call per key (naive loop)": one_call_per_key,
            "kombu passive declare per queue": kombu_passive_declare_per_queue,
            "console: one pipeline (depths)": console_depths_only,
            "console: full reading (+bindings, unacked)": console_full_reading,
        }
        for label, call in methods.items():
            got = call()
            assert got == expected, f"{label} counted {got}, expected {expected}"
        results = {label: measure(call, args.runs) for label, call in methods.items()}

    print(f"Queue depth, {args.queues} queues x 4 priority steps ({len(keys)} keys), "
          f"{expected} messages, {args.runs} runs each; {date.today()}, {os.cpu_count()} cores")
    print(f"{'method':<46}{'p50 ms':>9}{'p95 ms':>9}{'p95 vs console':>16}")
    base = percentile(results["console: one pipeline (depths)"], 0.95)
    for label, timings in results.items():
        p50, p95 = statistics.median(timings), percentile(timings, 0.95)
        print(f"{label:<46}{p50:>9.2f}{p95:>9.2f}{p95 / base:>15.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
