"""bench/load.py's reading of wrk and its soak verdict (the load itself is not a test)."""

from bench.load import QUEUES, Phase, Sample, judge, phase

WRK = """\
Running 10s test @ http://127.0.0.1:8080
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  412.00us  12.31ms   90.00%
  Latency Distribution
     50%  980.00us
     75%    1.20ms
     90%    1.50ms
     99%    2.31ms
  41234 requests in 10.00s, 5.12MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:   4123.40
Transfer/sec:    524.00KB
"""


def test_a_wrk_run_is_read_with_every_error_counted():
    read = phase("ramp-16", 16, 10, WRK)
    assert read == Phase("ramp-16", 16, 10, 41234, 4123.4, 0.98, 2.31, 15)
    assert round(read.error_rate, 6) == round(15 / 41234, 6)


def test_a_shed_answer_is_not_throughput():
    # A phase past capacity answers many cheap 503s: capacity counts redirects only.
    overloaded = Phase("spike", 256, 10, 91_120, 9_112.0, 16.2, 622.1, 78_177)
    assert round(overloaded.answered_per_s) == round(9_112.0 * (91_120 - 78_177) / 91_120)
    assert "(1,294 redirected)" in overloaded.line()


def test_a_run_wrk_could_not_measure_is_no_figure():
    read = phase("spike", 256, 10, "unable to connect to 127.0.0.1:8080 Connection refused\n")
    assert read.requests == 0
    assert read.requests_per_s == 0
    assert read.error_rate == 0


def samples(rss: list[float], **queues: list[float]) -> list[Sample]:
    return [
        Sample(
            at_s=10.0 * i,
            redirect_rss_mb=value,
            worker_rss_mb=60.0,
            queues={name: queues.get(name, [0.0] * len(rss))[i] for name in QUEUES},
        )
        for i, value in enumerate(rss)
    ]


def test_a_soak_whose_queues_go_up_and_down_is_flat():
    verdict = judge(samples([50, 64, 65, 65, 66, 65], ingest_pending=[0, 40, 0, 37, 12, 0]))
    assert verdict["flat"] is True
    assert verdict["lines"][-1] == "FLAT"


def test_memory_that_keeps_growing_is_not_flat():
    verdict = judge(samples([50, 64, 70, 76, 82, 90]))
    assert verdict["flat"] is False
    assert any("redirect_rss_mb" in line and "GROWING" in line for line in verdict["lines"])


def test_a_queue_that_keeps_setting_records_is_not_flat():
    verdict = judge(samples([64] * 6, ingest_lag=[0, 10, 20, 40, 80, 160]))
    assert verdict["flat"] is False
    assert any(line.startswith("ingest_lag") and "GROWING" in line for line in verdict["lines"])


def test_a_dropped_click_is_not_flat():
    verdict = judge(samples([64] * 6, clicks_dropped=[0, 0, 0, 0, 0, 3]))
    assert verdict["flat"] is False


def test_clicks_dropped_before_the_soak_are_not_the_soaks():
    # The counter is since the process started: drops during the warm-up are counted
    # elsewhere; only a rise during the soak is a failure.
    assert judge(samples([64] * 6, clicks_dropped=[1682] * 6))["flat"] is True
    assert judge(samples([64] * 6, clicks_dropped=[1682] * 5 + [1683]))["flat"] is False


def test_a_phase_that_dropped_clicks_says_so():
    quiet = Phase("ramp-8", 8, 10, 18_000, 1_800.0, 5.5, 14.5, 0)
    assert "DROPPED" not in quiet.line()
    quiet.clicks_dropped = 1_682
    assert "CLICKS DROPPED 1,682" in quiet.line()
