"""Stream time: minimum over partitions with unread records, else the maximum; never backwards."""

from processors.watermark import SideClock, StreamClock
from tests.factories import PAID, hours

A, B = ("t", 0), ("t", 1)


def test_a_lagging_partition_holds_stream_time_at_its_latest_event():
    clock = StreamClock()
    clock.observe(A, PAID + hours(5))
    clock.observe(B, PAID + hours(1))
    assert clock.local_time([A, B], caught_up=lambda p: p == A) == PAID + hours(1)


def test_when_every_partition_is_caught_up_stream_time_is_the_maximum():
    clock = StreamClock()
    clock.observe(A, PAID + hours(5))
    clock.observe(B, PAID + hours(1))
    assert clock.local_time([A, B], caught_up=lambda p: True) == PAID + hours(5)


def test_a_partition_with_unread_records_and_no_time_yet_holds_everything():
    clock = StreamClock()
    clock.observe(A, PAID)
    assert clock.local_time([A, B], caught_up=lambda p: p == A) is None


def test_stream_time_never_goes_backwards():
    clock = SideClock()
    assert clock.advance(PAID + hours(3)) == PAID + hours(3)
    assert clock.advance(PAID + hours(1)) == PAID + hours(3)
    assert clock.advance(None) == PAID + hours(3)


def test_the_remote_bound_needs_a_watermark_from_every_source_partition():
    clock = StreamClock(source_partitions=2)
    feed = ("order-feed", 0)
    clock.observe_remote(feed, [0], PAID + hours(2))
    assert clock.remote_bound([feed]) is None
    clock.observe_remote(feed, [1], PAID + hours(1))
    assert clock.remote_bound([feed]) == PAID + hours(1)
    clock.observe_remote(feed, [0, 1], PAID)  # an older mark does not move it back
    assert clock.remote_bound([feed]) == PAID + hours(1)
    assert clock.remote_bound([("order-feed", 1)]) is None, "every feed partition we read must have marks"
