//! Timing diagnoses across connections (contract part 2, DIAGNOSES.md,
//! "Diagnoses", D1-D3): `idle_timeout`, `max_lifetime`, `mass_disconnect`,
//! the order of the array, a connection in several diagnoses, grouping by
//! side. The other kinds are in tests/diagnoses.rs.
//!
//! Every summary is validated against the schema and the contract's
//! invariants (`common::validate_summary`, `common::validate_diagnoses`).

mod common;

use common::*;
use serde_json::{Value, json};

/// Seed of the "random" captures. Checked against the contract's suggested
/// D1 test (C(n,k) * k * (s/R)^(k-1) < 0.05): with it, no group of the
/// uniform captures comes below 0.37, and the three planted connections
/// come to about 0.0034.
const SEED: u64 = 5;

/// The three planted values of the "3 among 40" captures (the same idle
/// time, or the same age, up to 40 ms) and where they go among the 40.
const PLANTED: [f64; 3] = [45.0, 45.02, 45.04];
const PLANTED_AT: [usize; 3] = [6, 18, 30];

fn merged(conns: &[Conn]) -> Capture {
    let refs: Vec<&Conn> = conns.iter().collect();
    Capture::merge(&refs)
}

fn message(d: &Value) -> &str {
    d["message"].as_str().unwrap()
}

fn matches_lower(d: &Value) -> Vec<String> {
    d["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| m.as_str().unwrap().to_lowercase())
        .collect()
}

#[track_caller]
fn assert_mentions(d: &Value, count: u64, value: Option<f64>) {
    let msg = message(d);
    assert!(
        mentions_number(msg, count),
        "the message gives the number of connections {count}: {msg:?}"
    );
    if let Some(v) = value {
        assert!(
            mentions_value(msg, v, 0.1),
            "the message gives the value {v}: {msg:?}"
        );
    }
}

/// A connection cleanly closed at `close_at` after a frame at `start + 1`.
fn clean(client: &str, server: &str, start: f64, close_at: f64) -> Conn {
    let mut c = Conn::new(client, server);
    c.open_ws(T0 + start);
    c.client_send(T0 + start + 1.0, &cframe(OP_TEXT, b"x"));
    c.close_cleanly(T0 + close_at);
    c
}

// ---------------------------------------------------------------------------
// idle_timeout
// ---------------------------------------------------------------------------

#[test]
fn idle_timeout_at_sixty_seconds_names_nginx_and_the_alb() {
    let conns = vec![
        idle_cut(&client_no(0), 0.0, 60.0),
        idle_cut(&client_no(1), 100.0, 59.81),
        clean(&client_no(2), SERVER_ADDR, 200.0, 210.0),
        idle_cut(&client_no(3), 300.0, 60.29),
        idle_cut(&client_no(4), 400.0, 10.0),
        idle_cut(&client_no(5), 500.0, 60.1),
    ];
    let s = analyze_diag(&merged(&conns).write("idle_timeout_60"), &[]);
    assert_eq!(diagnoses(&s).len(), 1, "{:#}", s["diagnoses"]);
    let d = only_diag(&s, "idle_timeout");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1, 2, 4, 6]);
    // D3: the median of an even count is the mean of the two middle values.
    assert_values(d, (60.0 + 60.1) / 2.0, 59.81, 60.29);
    let m = matches_lower(d);
    assert!(m.iter().any(|x| x.contains("nginx")), "{m:?}");
    assert!(m.iter().any(|x| x.contains("alb")), "{m:?}");
    // Within max(0.5 s, 2 %) of 60 s: not Heroku's 55 s, nor 30 or 100 s.
    for other in ["heroku", "cloudflare", "gcp", "envoy"] {
        assert!(!m.iter().any(|x| x.contains(other)), "{other} in {m:?}");
    }
    assert_mentions(d, 4, Some(60.05));
}

#[test]
fn idle_timeout_absent_without_three_alike_cuts_by_one_side() {
    let mut conns = vec![
        // Only two cut by the server after 60 s ...
        idle_cut(&client_no(0), 0.0, 60.0),
        idle_cut(&client_no(1), 100.0, 60.1),
        // ... and a third after 60 s, but cut by the client.
        cut_conn(
            &client_no(2),
            SERVER_ADDR,
            200.0,
            &[201.0],
            End::Fin(Dir::C2S),
            261.05,
        ),
    ];
    // Closed with a close handshake after 60 s of silence: not cut.
    for i in 3..6 {
        let start = 100.0 * i as f64;
        conns.push(clean(&client_no(i), SERVER_ADDR, start, start + 61.0));
    }
    // Three cuts whose idle times are not within max(0.5 s, 2 %) pairwise.
    for (i, idle) in [(6, 30.0), (7, 32.0), (8, 34.0)] {
        conns.push(idle_cut(&client_no(i), 100.0 * i as f64, idle));
    }
    let s = analyze_diag(&merged(&conns).write("idle_timeout_absent"), &[]);
    assert_eq!(s["diagnoses"], json!([]));
}

// ---------------------------------------------------------------------------
// D1: standing out from chance
// ---------------------------------------------------------------------------

#[test]
fn d1_two_hundred_uniform_idle_times_give_no_idle_timeout() {
    let mut rng = XorShift::new(SEED);
    let conns: Vec<Conn> = (0..200)
        .map(|i| idle_cut(&client_no(i), i as f64 * 10.0, rng.uniform(0.0, 120.0)))
        .collect();
    let s = analyze_diag(&merged(&conns).write("d1_uniform_idle"), &[]);
    assert_eq!(common::conns(&s).len(), 200);
    assert_no_diag(&s, "idle_timeout");
    assert_no_diag(&s, "max_lifetime");
}

#[test]
fn d1_three_alike_idle_times_among_forty_give_one_idle_timeout() {
    let mut rng = XorShift::new(SEED);
    let mut random = Vec::new();
    while random.len() < 37 {
        // Kept away from the planted value so the group is exactly those 3.
        let x = rng.uniform(0.0, 120.0);
        if (x - 45.0).abs() >= 2.0 {
            random.push(x);
        }
    }
    let mut idles = random.into_iter();
    let mut planted = PLANTED.iter();
    let conns: Vec<Conn> = (0..40)
        .map(|i| {
            let idle = if PLANTED_AT.contains(&i) {
                *planted.next().unwrap()
            } else {
                idles.next().unwrap()
            };
            idle_cut(&client_no(i), i as f64 * 10.0, idle)
        })
        .collect();
    let s = analyze_diag(&merged(&conns).write("d1_three_idle_among_forty"), &[]);
    let d = only_diag(&s, "idle_timeout");
    assert_eq!(diag_ids(d), PLANTED_AT.map(|i| i as u64 + 1));
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_values(d, 45.02, 45.0, 45.04);
    // No well-known default is 45 s.
    assert_eq!(d["matches"], json!([]));
    assert_mentions(d, 3, Some(45.02));
    assert_no_diag(&s, "max_lifetime");
}

/// Ages uniform over 0 to 120 s, each with a random idle time below half
/// its age.
fn random_age(rng: &mut XorShift) -> (f64, f64) {
    let age = rng.uniform(0.0, 120.0);
    let idle = age * rng.uniform(0.05, 0.45);
    (age, idle)
}

#[test]
fn d1_two_hundred_uniform_ages_give_no_max_lifetime() {
    let mut rng = XorShift::new(SEED);
    let conns: Vec<Conn> = (0..200)
        .map(|i| {
            let (age, idle) = random_age(&mut rng);
            age_cut(&client_no(i), i as f64 * 10.0, age, idle)
        })
        .collect();
    let s = analyze_diag(&merged(&conns).write("d1_uniform_age"), &[]);
    assert_eq!(common::conns(&s).len(), 200);
    assert_no_diag(&s, "max_lifetime");
    assert_no_diag(&s, "idle_timeout");
}

#[test]
fn d1_three_alike_ages_among_forty_give_one_max_lifetime() {
    let mut rng = XorShift::new(SEED);
    let mut random = Vec::new();
    while random.len() < 37 {
        let (age, idle) = random_age(&mut rng);
        if (age - 45.0).abs() >= 2.0 {
            random.push((age, idle));
        }
    }
    let mut random = random.into_iter();
    // Idle times well below half the age, and unlike each other.
    let mut planted = PLANTED.iter().zip([3.0, 9.0, 17.0]);
    let conns: Vec<Conn> = (0..40)
        .map(|i| {
            let (age, idle) = if PLANTED_AT.contains(&i) {
                let (a, idle) = planted.next().unwrap();
                (*a, idle)
            } else {
                random.next().unwrap()
            };
            age_cut(&client_no(i), i as f64 * 10.0, age, idle)
        })
        .collect();
    let s = analyze_diag(&merged(&conns).write("d1_three_ages_among_forty"), &[]);
    let d = only_diag(&s, "max_lifetime");
    assert_eq!(diag_ids(d), PLANTED_AT.map(|i| i as u64 + 1));
    assert_eq!(d["severity"], "error");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_values(d, 45.02, 45.0, 45.04);
    assert_eq!(d["matches"], json!([]));
    assert_mentions(d, 3, Some(45.02));
    assert_no_diag(&s, "idle_timeout");
}

// ---------------------------------------------------------------------------
// max_lifetime
// ---------------------------------------------------------------------------

#[test]
fn max_lifetime_at_thirty_seconds_names_the_gcp_backend_timeout() {
    let conns = vec![
        age_cut(&client_no(0), 0.0, 30.0, 2.0),
        age_cut(&client_no(1), 100.0, 30.1, 5.0),
        age_cut(&client_no(2), 200.0, 30.2, 9.0),
        // Same age, but idle for more than half of it: not a lifetime cap.
        age_cut(&client_no(3), 300.0, 30.05, 16.0),
        clean(&client_no(4), SERVER_ADDR, 400.0, 430.0),
    ];
    let s = analyze_diag(&merged(&conns).write("max_lifetime_30"), &[]);
    assert_eq!(diagnoses(&s).len(), 1, "{:#}", s["diagnoses"]);
    let d = only_diag(&s, "max_lifetime");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1, 2, 3]);
    assert_values(d, 30.1, 30.0, 30.2);
    let m = matches_lower(d);
    assert!(
        m.iter().any(|x| x.contains("gcp") || x.contains("google")),
        "{m:?}"
    );
    // D3: lifetime defaults only, for max_lifetime.
    assert!(!m.iter().any(|x| x.contains("nginx")), "{m:?}");
    assert_mentions(d, 3, Some(30.1));
}

#[test]
fn max_lifetime_absent_when_one_of_three_was_idle_half_its_age() {
    let conns = vec![
        age_cut(&client_no(0), 0.0, 40.0, 5.0),
        age_cut(&client_no(1), 100.0, 40.1, 10.0),
        age_cut(&client_no(2), 200.0, 40.2, 21.0),
    ];
    let s = analyze_diag(&merged(&conns).write("max_lifetime_absent"), &[]);
    assert_eq!(s["diagnoses"], json!([]));
}

// ---------------------------------------------------------------------------
// mass_disconnect
// ---------------------------------------------------------------------------

/// Connections of the same server, started at different times, each cut by
/// a server RST at the given end time with an idle time unlike the others'.
/// Clients are numbered from `first_client`.
fn resets_at(first_client: usize, ends: &[f64]) -> (Vec<Conn>, Vec<u64>) {
    let starts: Vec<f64> = (0..ends.len()).map(|j| ((j * 7) % 13) as f64).collect();
    let conns = ends
        .iter()
        .enumerate()
        .map(|(j, &end)| {
            let idle = 2.0 + 3.0 * j as f64;
            cut_conn(
                &client_no(first_client + j),
                SERVER_ADDR,
                starts[j],
                &[end - idle],
                End::Rst(Dir::S2C),
                end,
            )
        })
        .collect();
    // Ids follow the first packets, i.e. the starts.
    let ids = starts
        .iter()
        .map(|s| 1 + starts.iter().filter(|o| *o < s).count() as u64)
        .collect();
    (conns, ids)
}

#[test]
fn mass_disconnect_sliding_window_largest_group_first() {
    // A: 7 resets within 0.6 s; B: 5 within 0.6 s from 0.7 s after A.
    // A window that takes A's tail and B's head holds fewer than A: A is
    // taken first, then B from what is left (each connection in at most
    // one entry).
    let a = [50.0, 50.1, 50.2, 50.3, 50.4, 50.5, 50.6];
    let b = [51.3, 51.45, 51.6, 51.75, 51.9];
    let ends: Vec<f64> = a.iter().chain(&b).copied().collect();
    let (conns, ids) = resets_at(0, &ends);
    let s = analyze_diag(&merged(&conns).write("mass_disconnect_two_groups"), &[]);
    let ds = diags_of(&s, "mass_disconnect");
    assert_eq!(ds.len(), 2, "{:#}", s["diagnoses"]);
    let mut want_a: Vec<u64> = ids[..7].to_vec();
    let mut want_b: Vec<u64> = ids[7..].to_vec();
    want_a.sort();
    want_b.sort();
    assert_eq!(diag_ids(ds[0]), want_a);
    assert_eq!(diag_ids(ds[1]), want_b);
    for (d, n) in [(ds[0], 7), (ds[1], 5)] {
        assert_eq!(d["severity"], "warning");
        assert_eq!(d["side"], "server");
        assert_eq!(d["peer"], SERVER_ADDR);
        for k in ["value_s", "min_s", "max_s"] {
            assert!(d[k].is_null(), "{k} is null for mass_disconnect (D3)");
        }
        assert_eq!(d["matches"], json!([]));
        assert_mentions(d, n, None);
    }
}

#[test]
fn mass_disconnect_across_a_second_boundary_with_1012_closes() {
    // T0 is a whole second: T0 + 100.0 splits these 5 instants 2 | 3 in
    // calendar seconds; a sliding 1.0 s window holds all 5 (0.6 s apart).
    let mut conns = Vec::new();
    for (j, (end, idle)) in [(99.7, 5.0), (99.9, 15.0), (100.1, 25.0)]
        .into_iter()
        .enumerate()
    {
        conns.push(cut_conn(
            &client_no(j),
            SERVER_ADDR,
            10.0 * j as f64,
            &[end - idle],
            End::Fin(Dir::S2C),
            end,
        ));
    }
    // Closed cleanly, but with 1012 (service restart): the instant is the
    // close frame's time.
    for (j, at) in [(3, 100.2), (4, 100.3)] {
        let mut c = Conn::new(&client_no(j), SERVER_ADDR);
        c.open_ws(T0 + j as f64);
        c.server_send(T0 + at, &sclose(1012, "restart"));
        c.client_send(T0 + at + 0.001, &cclose(1012, ""));
        c.server_fin(T0 + at + 0.002);
        c.client_fin(T0 + at + 0.003);
        conns.push(c);
    }
    let s = analyze_diag(&merged(&conns).write("mass_disconnect_boundary"), &[]);
    let d = only_diag(&s, "mass_disconnect");
    assert_eq!(diag_ids(d), [1, 2, 3, 4, 5]);
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert!(d["value_s"].is_null());
    assert_mentions(d, 5, None);
}

#[test]
fn mass_disconnect_absent_when_spread_too_few_or_clean() {
    // 5 resets 0.375 s apart: no 1.0 s window holds more than 3.
    let (mut conns, _) = resets_at(0, &[200.0, 200.375, 200.75, 201.125, 201.5]);
    // 4 resets within 0.3 s.
    conns.extend(resets_at(10, &[300.0, 300.1, 300.2, 300.3]).0);
    // 6 clean closes with 1000 within 0.5 s.
    for k in 0..6 {
        let at = 400.0 + 0.1 * k as f64;
        conns.push(clean(&client_no(20 + k), SERVER_ADDR, k as f64, at));
    }
    let s = analyze_diag(&merged(&conns).write("mass_disconnect_absent"), &[]);
    assert_no_diag(&s, "mass_disconnect");
}

// ---------------------------------------------------------------------------
// Order, D2, D3 grouping by side
// ---------------------------------------------------------------------------

#[test]
fn diagnoses_are_ordered_by_severity_then_number_of_connections() {
    let mut conns = Vec::new();
    // idle_timeout (error): 3 connections cut by the server after 60 s.
    for (i, idle) in [(0, 60.0), (1, 60.1), (2, 60.2)] {
        conns.push(idle_cut(&client_no(i), 100.0 * i as f64, idle));
    }
    // never_answers_close (error): 2 client close frames the server left
    // unanswered.
    for i in 3..5 {
        let start = 100.0 * i as f64;
        let mut c = Conn::new(&client_no(i), SERVER_ADDR);
        c.open_ws(T0 + start);
        c.client_send(T0 + start + 1.0, &cclose(1000, ""));
        end_tcp(&mut c, End::Fin(Dir::S2C), start + 1.5);
        conns.push(c);
    }
    // mass_disconnect (warning): 5 cut by client RSTs within 0.4 s, after
    // idle times unlike each other.
    for (k, idle) in [5.0, 17.0, 33.0, 71.0, 90.0].into_iter().enumerate() {
        let end = 600.0 + 0.1 * k as f64;
        conns.push(cut_conn(
            &client_no(5 + k),
            SERVER_ADDR,
            end - idle - 2.0,
            &[end - idle],
            End::Rst(Dir::C2S),
            end,
        ));
    }
    // error_close_codes (warning): 1 server close with 1011, from another
    // server (so the first one's record on close frames stays clean).
    let mut c = Conn::new(&client_no(10), "10.0.0.3:8765");
    c.open_ws(T0 + 700.0);
    c.server_send(T0 + 701.0, &sclose(1011, "internal error"));
    c.client_send(T0 + 701.001, &cclose(1000, ""));
    end_tcp(&mut c, End::Fin(Dir::S2C), 701.002);
    conns.push(c);

    let s = analyze_diag(&merged(&conns).write("diagnoses_order"), &[]);
    let got: Vec<(String, usize)> = diagnoses(&s)
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), diag_ids(d).len()))
        .collect();
    let want: Vec<(String, usize)> = [
        ("idle_timeout", 3),
        ("never_answers_close", 2),
        ("mass_disconnect", 5),
        ("error_close_codes", 1),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(got, want, "{:#}", s["diagnoses"]);
    assert_eq!(only_diag(&s, "mass_disconnect")["side"], "client");
    assert_eq!(only_diag(&s, "mass_disconnect")["peer"], "10.0.0.1");
}

#[test]
fn d2_a_connection_in_several_diagnoses_and_totals_unchanged() {
    // 5 connections cut by the server after 60 s idle, all in one second.
    let conns: Vec<Conn> = [0.0, 0.02, 0.04, 0.01, 0.03]
        .into_iter()
        .enumerate()
        .map(|(i, jitter)| idle_cut(&client_no(i), 0.1 * i as f64, 60.0 + jitter))
        .collect();
    let s = analyze_diag(&merged(&conns).write("d2_several_diagnoses"), &[]);
    let idle = only_diag(&s, "idle_timeout");
    let mass = only_diag(&s, "mass_disconnect");
    assert_eq!(diag_ids(idle), [1, 2, 3, 4, 5]);
    assert_eq!(diag_ids(mass), [1, 2, 3, 4, 5]);
    assert_values(idle, 60.02, 60.0, 60.04);
    assert_eq!(diagnoses(&s)[0]["kind"], "idle_timeout", "error first");
    // D2: totals count connections and their findings only.
    let totals = &s["totals"];
    let keys: Vec<&String> = totals.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "close_codes",
            "connections",
            "findings",
            "outcomes",
            "severities"
        ]
    );
    assert_eq!(totals["connections"], 5);
    assert_eq!(totals["findings"], json!({"abnormal_closure": 5}));
    assert_eq!(
        totals["severities"],
        json!({"error": 5, "warning": 0, "info": 0})
    );
    assert_eq!(totals["outcomes"]["abnormal"], 5);
}

#[test]
fn d3_nginx_cutting_both_legs_groups_by_side() {
    // Three proxied connections: client -> nginx (10.0.0.2:443) and
    // nginx -> backend (10.0.0.3:8765). nginx forwards the client's frame
    // upstream, then cuts both legs 60 s later (proxy_read_timeout).
    let nginx = "10.0.0.2:443";
    let mut conns = Vec::new();
    for (i, idle) in [60.0, 60.1, 60.2].into_iter().enumerate() {
        let start = 100.0 * i as f64;
        let cut = start + 1.0 + idle;
        conns.push(cut_conn(
            &format!("10.0.0.1:{}", 41000 + i),
            nginx,
            start,
            &[start + 1.0],
            End::Fin(Dir::S2C),
            cut,
        ));
        conns.push(cut_conn(
            &format!("10.0.0.2:{}", 33000 + i),
            "10.0.0.3:8765",
            start + 0.01,
            &[start + 1.001],
            End::Fin(Dir::C2S),
            cut + 0.0005,
        ));
    }
    let s = analyze_diag(&merged(&conns).write("d3_nginx_both_legs"), &[]);
    let ds = diags_of(&s, "idle_timeout");
    let find = |side: Option<&str>| ds.iter().find(|d| d["side"].as_str() == side).copied();
    match (find(SERVER), find(CLIENT), find(NO_SIDE)) {
        // One per side: the client legs (nginx is their server) and the
        // upstream legs (nginx is their client, peer its IP).
        (Some(down), Some(up), None) => {
            assert_eq!(ds.len(), 2);
            assert_eq!(diag_ids(down), [1, 3, 5]);
            assert_eq!(down["peer"], nginx);
            assert_eq!(diag_ids(up), [2, 4, 6]);
            assert_eq!(up["peer"], "10.0.0.2");
        }
        // Or one with side null holding all six.
        (None, None, Some(both)) => {
            assert_eq!(ds.len(), 1);
            assert_eq!(diag_ids(both), [1, 2, 3, 4, 5, 6]);
            assert!(both["peer"].is_null());
        }
        _ => panic!(
            "D3: one idle_timeout per side, or one with side null\n{:#}",
            s["diagnoses"]
        ),
    }
}
