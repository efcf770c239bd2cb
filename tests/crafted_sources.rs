//! Sources, link types and file formats: the `sources` entry, the clean
//! conversation written with other link layers and formats (a table),
//! standard input, several files. See crafted_support/mod.rs.

mod common;
mod crafted_support;

use std::path::Path;

use common::*;
use crafted_support::*;

#[test]
fn sources_fields_and_non_tcp_packets() {
    let c = clean_conn();
    let mut cap = Capture::new();
    cap.arp(t(-1.0), [10, 0, 0, 1], [10, 0, 0, 2]);
    cap.add(&c);
    // UDP between the same endpoints, carrying close-frame bytes: ignored.
    cap.udp(t(0.3), CLIENT_ADDR, SERVER_ADDR, &cclose(1011, "udp"));
    // A record that cannot be decoded: counted and skipped (rule 15).
    cap.junk(t(0.4), &[0x45, 0, 0, 0x28, 0, 0, 0, 0]);
    // A datagram cut short by the snap length: bytes sums captured lengths.
    cap.udp(t(3.0), "10.0.0.99:40000", "10.0.0.100:9", &[0u8; 100]);
    cap.packets.last_mut().unwrap().snap = Some(42);
    cap.sort_by_time();
    let path = cap.write("sources_fields_and_non_tcp_packets");
    let s = analyze_json(&path, &[]);
    // Field by field: the contract lets new fields be added.
    let sources = s["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    let src = &sources[0];
    assert_eq!(src["kind"], "file");
    assert_eq!(src["name"], path_str(&path));
    assert_eq!(src["link_type"], "EN10MB");
    // Rule 18: every record read, decodable or not.
    assert_eq!(src["packets"].as_u64(), Some(cap.len() as u64));
    // Rule 14: the sum of the captured (not original) lengths.
    assert_eq!(src["bytes"].as_u64(), Some(cap.captured_bytes()));
    assert!(src["dropped"].is_null());
    assert_eq!(cap.len(), clean_conn().packets.len() + 4);
    assert_num(&s["sources"][0]["first_ts"], t(-1.0));
    assert_num(&s["sources"][0]["last_ts"], t(3.0));
    assert_clean_conn(only_conn(&s));
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1000", 2)])
    );
}

/// Analyses the clean conversation written with another link layer or file
/// format and checks the connection is reported exactly as from the
/// Ethernet pcap.
fn same_as_ethernet_pcap(name: &str, path: &Path, link_type: &str) {
    let reference = analyze_json(
        &Capture::of(&clean_conn()).write(&format!("{name}_reference")),
        &[],
    );
    let s = analyze_json(path, &[]);
    assert_eq!(s["sources"][0]["link_type"], link_type);
    assert_eq!(s["sources"][0]["name"], path_str(path));
    assert_eq!(s["connections"], reference["connections"]);
    assert_eq!(s["totals"], reference["totals"]);
    assert_clean_conn(only_conn(&s));
}

/// A case of [`other_link_types_and_file_formats`]: its name (also the
/// capture's), the capture, how it is written, the link type reported.
type Format = (
    &'static str,
    Capture,
    fn(&Capture, &str) -> TempFile,
    &'static str,
);

#[test]
fn other_link_types_and_file_formats() {
    // Rule 14: several distinct link types of a pcapng joined by ",".
    // Reading: in the order of the interfaces in the file.
    let mut two_links = Capture::of(&clean_conn());
    two_links.links = vec![Link::Ethernet, Link::Raw];
    for p in &mut two_links.packets {
        p.iface = 1;
    }
    two_links.filler(t(2.0));
    let formats: Vec<Format> = vec![
        (
            "raw_ip_link_type",
            Capture::of(&clean_conn()).with_link(Link::Raw),
            Capture::write,
            "RAW",
        ),
        (
            "linux_sll2_link_type",
            Capture::of(&clean_conn()).with_link(Link::LinuxSll2),
            Capture::write,
            "LINUX_SLL2",
        ),
        (
            "pcapng_file",
            Capture::of(&clean_conn()),
            Capture::write_pcapng,
            "EN10MB",
        ),
        (
            "pcapng_with_two_link_types",
            two_links,
            Capture::write_pcapng,
            "EN10MB,RAW",
        ),
        (
            "nanosecond_pcap",
            Capture::of(&clean_conn()),
            Capture::write_pcap_ns,
            "EN10MB",
        ),
    ];
    for_each_case(
        &formats,
        |f| f.0,
        |(name, cap, write, link_type)| {
            let path = write(cap, name);
            same_as_ethernet_pcap(name, &path, link_type);
            // Rule 18 and 14: every record, the captured lengths.
            let s = analyze_json(&path, &[]);
            let src = &s["sources"][0];
            assert_eq!(src["packets"].as_u64(), Some(cap.len() as u64), "packets");
            assert_eq!(src["bytes"].as_u64(), Some(cap.captured_bytes()), "bytes");
        },
    );
}

#[test]
fn stdin_dash_gives_the_same_result_as_the_file() {
    let cap = Capture::of(&clean_conn());
    let path = cap.write("stdin_dash");
    let from_file = analyze_json(&path, &[]);
    let out = run_with_stdin(&["analyze", "-", "--json", "-"], cap.pcap_bytes());
    let from_stdin = summary_from(&out, 0);
    assert_eq!(from_stdin["connections"], from_file["connections"]);
    assert_eq!(from_stdin["totals"], from_file["totals"]);
    let src = &from_stdin["sources"][0];
    assert_eq!(src["kind"], "file");
    assert_eq!(src["name"], "-");
    for key in [
        "link_type",
        "packets",
        "bytes",
        "first_ts",
        "last_ts",
        "dropped",
    ] {
        assert_eq!(src[key], from_file["sources"][0][key], "sources[0].{key}");
    }
}

#[test]
fn a_connection_split_across_two_files_in_either_order() {
    let cap = Capture::of(&clean_conn());
    let k = cap.len() / 2;
    let (a, b) = (cap.slice(0..k), cap.slice(k..cap.len()));
    let pa = a.write("split_part_a");
    let pb = b.write("split_part_b");
    let whole = analyze_json(&cap.write("split_whole"), &[]);
    for (order, parts) in [
        ("a b", [(&pa, &a), (&pb, &b)]),
        ("b a", [(&pb, &b), (&pa, &a)]),
    ] {
        let s = analyze_files_json(&[parts[0].0, parts[1].0], &[], 0);
        assert_eq!(
            s["connections"], whole["connections"],
            "files given as {order}"
        );
        assert_clean_conn(only_conn(&s));
        let sources = s["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2);
        // Rule 14: entries in command-line order.
        for (src, (path, part)) in sources.iter().zip(parts) {
            assert_eq!(src["name"], path_str(path));
            assert_eq!(src["packets"].as_u64(), Some(part.len() as u64));
            assert_eq!(src["bytes"].as_u64(), Some(part.captured_bytes()));
            assert_num(&src["first_ts"], part.first_ts());
            assert_num(&src["last_ts"], part.last_ts());
        }
    }
}

#[test]
fn capture_end_is_the_last_packet_of_all_files() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    let pa = Capture::of(&c).write("capture_end_part_a");
    let mut later = Capture::new();
    later.filler(t(7.0));
    let pb = later.write("capture_end_part_b");

    let alone = analyze_json(&pa, &[]);
    assert_outcome(only_conn(&alone), "pending");
    // Rule 2: the capture's end is the last packet of all input files.
    let both = analyze_files_json(&[&pa, &pb], &[], 0);
    let c = only_conn(&both);
    assert_outcome(c, "timeout");
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(6.0));
}
