from stream_server.keepalive import Keepalive, Verdict


def test_a_silent_peer_is_pinged_then_found_dead():
    ka = Keepalive(idle_s=20, reply_s=20, now=0)
    assert ka.check(19.9, last_data=0, paused=False) is Verdict.OK
    assert ka.check(20.0, last_data=0, paused=False) is Verdict.PING
    assert ka.check(39.9, last_data=0, paused=False) is Verdict.OK
    assert ka.check(40.0, last_data=0, paused=False) is Verdict.DEAD


def test_a_pong_or_any_byte_after_the_ping_keeps_it():
    ka = Keepalive(idle_s=20, reply_s=20, now=0)
    assert ka.check(20, last_data=0, paused=False) is Verdict.PING
    assert ka.check(25, last_data=20.1, paused=False) is Verdict.OK  # the pong came
    assert ka.check(39, last_data=20.1, paused=False) is Verdict.OK
    assert ka.check(40.1, last_data=20.1, paused=False) is Verdict.PING


def test_time_we_paused_the_socket_is_no_ones_silence():
    """Issue 22: back-pressure stopped reading; picows's keepalive then closed the call."""
    ka = Keepalive(idle_s=20, reply_s=20, now=0)
    for t in range(0, 300):  # five minutes behind a slow Kinesis, the kernel hears nothing
        assert ka.check(float(t), last_data=0, paused=True) is Verdict.OK
    assert ka.check(318.9, last_data=0, paused=False) is Verdict.OK  # from the last pause
    assert ka.check(319.0, last_data=0, paused=False) is Verdict.PING


def test_a_pause_after_a_ping_cancels_it():
    ka = Keepalive(idle_s=1, reply_s=1, now=0)
    assert ka.check(1, last_data=0, paused=False) is Verdict.PING
    assert ka.check(1.5, last_data=0, paused=True) is Verdict.OK
    assert ka.check(2.4, last_data=0, paused=False) is Verdict.OK
    assert ka.check(2.5, last_data=0, paused=False) is Verdict.PING
