"""The benchmark's own parsing: a misread wrk report would print wrong numbers silently."""

from __future__ import annotations

from bench.run import parse_wrk

# wrk 4.x's report; its thread stats' "+/- Stdev" column also ends in "%".
WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:8000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.45ms    3.21ms  45.00ms   87.50%
    Req/Sec     5.60k   400.00     6.20k    71.99%
  Latency Distribution
     50%   11.30ms
     75%   12.00ms
     90%   14.00ms
     99%  117.70ms
  56000 requests in 10.00s, 9.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   5600.00
Transfer/sec:      0.90MB
"""


def test_wrk_percentiles_are_read_from_the_latency_distribution() -> None:
    rps, p50, p99, errors, requests = parse_wrk(WRK_REPORT)
    assert (rps, p50, p99) == (5600.0, 11.3, 117.7)
    assert (errors, requests) == (4 + 3, 56000)
