import threading

from hybrid_operator.k8s.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_passes_then_calls_are_spaced_at_qps() -> None:
    t = FakeTime()
    bucket = TokenBucket(50, 100, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        bucket.acquire()
    assert t.slept == []
    for _ in range(50):
        bucket.acquire()
    # 150 calls from a full bucket of 100 at 50 a second: the last one at 1 s.
    assert abs(t.now - 1.0) < 1e-9
    assert bucket.throttled == 50


def test_tokens_refill_up_to_the_burst_only() -> None:
    t = FakeTime()
    bucket = TokenBucket(10, 5, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        bucket.acquire()
    t.now += 100.0  # a long pause saves at most `burst` tokens
    for _ in range(5):
        bucket.acquire()
    assert t.slept == []
    bucket.acquire()
    assert abs(t.slept[-1] - 0.1) < 1e-9


def test_zero_qps_means_no_limit() -> None:
    t = FakeTime()
    bucket = TokenBucket(0, 1, clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        bucket.acquire()
    assert t.slept == []


def test_concurrent_callers_reserve_distinct_slots() -> None:
    t = FakeTime()
    bucket = TokenBucket(100, 1, clock=t.clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        wait = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One token in hand, then one every 10 ms: every caller gets its own slot.
    assert sorted(round(w, 6) for w in waits) == [round(0.01 * i, 6) for i in range(20)]
