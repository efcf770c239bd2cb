//! The close timeout's deadlines (rules 1, 9, 10 and 16): an answer or a TCP
//! end at, just before or just after a deadline, `tcp_not_closed`,
//! `reset_after_close`, time going backwards, `--close-timeout`. Mostly a
//! table of cases; see crafted_support/mod.rs.

mod common;
mod crafted_support;

use common::*;
use crafted_support::*;

/// A close at +1.1 answered at `answer`, TCP ended at +6.2 and +6.3.
fn answer_at(answer: f64) -> Conn {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.1), &cclose(1000, ""));
    c.server_send(t(answer), &sclose(1000, ""));
    c.server_fin(t(6.2));
    c.client_fin(t(6.3));
    c
}

/// A close at +1.0 answered at +1.25, then `end` (the server's FIN, with
/// the client's after it, or only a client ACK).
fn closed_at_1_25_then(end: impl FnOnce(&mut Conn)) -> Conn {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.25), &sclose(1000, ""));
    end(&mut c);
    c
}

/// A close at +10.25 never answered; the server's FIN at `fin`, the
/// client's at +15.3.
fn unanswered_then_fin_at(fin: f64) -> Conn {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(10.25), &cclose(1000, ""));
    c.server_fin(t(fin));
    c.client_fin(t(15.3));
    c
}

const DEADLINES: &[Case] = &[
    Case {
        name: "answer_exactly_at_the_deadline_is_clean",
        capture: "answer_exactly_at_the_deadline",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(10.25), &cclose(1000, ""));
            c.server_send(t(15.25), &sclose(1000, ""));
            c.server_fin(t(15.5));
            c.client_fin(t(15.6));
            c
        },
        outcome: "clean",
        handshake_s: Secs::Is(5.0),
        findings: &[],
        ..Case::DEFAULT
    },
    // Times that are not exact binary fractions: the capture's microseconds
    // decide, not floating-point rounding.
    Case {
        name: "answer_at_the_deadline_with_decimal_times",
        capture: "answer_at_6.1",
        conn: || answer_at(6.1),
        outcome: "clean",
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "answer_at_the_deadline_one_microsecond_late",
        capture: "answer_at_6.100001",
        conn: || answer_at(6.100001),
        outcome: "timeout",
        findings: &[("close_timeout", SERVER, 6.1)],
        ..Case::DEFAULT
    },
    Case {
        name: "tcp_end_exactly_at_the_deadline_is_timeout",
        capture: "tcp_end_exactly_at_the_deadline",
        conn: || unanswered_then_fin_at(15.25),
        // Rule 16: a TCP end exactly at the deadline is not before it.
        outcome: "timeout",
        tcp_end: Some(("fin", SERVER, Some(15.25))),
        findings: &[("close_timeout", SERVER, 15.25)],
        ..Case::DEFAULT
    },
    Case {
        name: "tcp_end_one_microsecond_before_the_deadline_is_unanswered",
        capture: "tcp_end_just_before_the_deadline",
        conn: || unanswered_then_fin_at(15.249999),
        outcome: "unanswered",
        findings: &[("unanswered_close", SERVER, 15.249999)],
        ..Case::DEFAULT
    },
    Case {
        name: "tcp_not_closed_a_close_timeout_after_the_later_close_frame",
        capture: "tcp_not_closed",
        conn: || {
            closed_at_1_25_then(|c| {
                c.server_fin(t(7.0));
                c.client_fin(t(7.1));
            })
        },
        outcome: "clean",
        tcp_end: Some(("fin", SERVER, Some(7.0))),
        // Rule 9: side server, at the later close frame + close timeout
        // (rule 16).
        findings: &[("tcp_not_closed", SERVER, 6.25)],
        ..Case::DEFAULT
    },
    Case {
        name: "tcp_not_closed_needs_the_capture_to_reach_its_deadline",
        capture: "tcp_not_closed_not_reached",
        conn: || {
            closed_at_1_25_then(|c| {
                c.client_ack(t(6.0));
            })
        },
        outcome: "clean",
        tcp_end: Some(("none", NO_SIDE, None)),
        findings: &[],
        ..Case::DEFAULT
    },
    // Rule 9 says "no FIN or RST ... by the time of" the deadline: a FIN at
    // exactly that time is by then.
    Case {
        name: "tcp_end_exactly_at_the_tcp_not_closed_deadline_is_in_time",
        capture: "tcp_end_at_tcp_not_closed_deadline",
        conn: || {
            closed_at_1_25_then(|c| {
                c.server_fin(t(6.25));
                c.client_fin(t(6.5));
            })
        },
        outcome: "clean",
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "reset_after_close_even_after_a_fin",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cclose(1000, ""));
            c.server_send(t(1.001), &sclose(1000, ""));
            c.server_fin(t(1.002));
            c.client_rst(t(1.003));
            c
        },
        outcome: "clean",
        // tcp_end is the first FIN or RST seen.
        tcp_end: Some(("fin", SERVER, Some(1.002))),
        // Rule 10: side is the RST's sender.
        findings: &[("reset_after_close", CLIENT, 1.003)],
        ..Case::DEFAULT
    },
    Case {
        name: "time_going_backwards_never_gives_negative_durations",
        capture: "time_going_backwards",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(2.0), &cframe(OP_TEXT, b"x"));
            c.client_send(t(5.0), &cclose(1000, ""));
            // The clock steps back: taken in order of arrival (rule 19).
            c.server_send(t(4.9), &sclose(1000, ""));
            c.server_fin(t(4.95));
            c.client_fin(t(4.96));
            c
        },
        outcome: "clean",
        initiator: Some(CLIENT),
        handshake_s: Secs::Is(0.0),
        idle_s: Secs::Is(3.0),
        ..Case::DEFAULT
    },
];

#[test]
fn each_deadline_case() {
    run_cases(DEADLINES);
}

#[test]
fn close_timeout_option_accepts_fractions() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.75), &sclose(1000, ""));
    c.server_fin(t(1.8));
    c.client_fin(t(1.9));
    let path = Capture::of(&c).write("close_timeout_option_accepts_fractions");

    let s = analyze_json(&path, &[]);
    assert_num(&s["settings"]["close_timeout_s"], 5.0);
    assert_outcome(only_conn(&s), "clean");

    let s = analyze_json(&path, &["--close-timeout", "0.5"]);
    assert_num(&s["settings"]["close_timeout_s"], 0.5);
    let c = only_conn(&s);
    assert_outcome(c, "timeout");
    assert_num(&c["close"]["handshake_s"], 0.75);
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(1.5));
}
