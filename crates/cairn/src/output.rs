//! What the CLI prints: readable tables for people, and with `--json` exactly
//! the API's JSON shapes (DESIGN.md, Interfaces), so scripts can rely on them.
//!
//! Every function here is pure (data in, `String` out, no trailing newline)
//! so the output is tested without a node.

use cairn_core::NodeId;
use cairn_core::api::{Locations, LookupView, MemberState, NodeInfo, RingView};
use cairn_core::wire::Peer;
use serde::Serialize;

/// Shown where an optional value is absent (no HTTP address, no predecessor).
const NONE: &str = "-";

/// The API shape as pretty JSON: the same structs the node serialises.
pub fn json<T: Serialize>(value: &T) -> String {
    // The API shapes are plain structs with string keys, which always
    // serialise; should that ever change, print the reason as JSON too.
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() }).to_string())
}

/// `cairn whereis`: the replica set in ring order, and who holds the newest version.
pub fn whereis_text(key: &str, locations: &Locations) -> String {
    let rows: Vec<Vec<String>> = locations
        .replicas
        .iter()
        .enumerate()
        .map(|(index, replica)| {
            let holds = match (replica.answered, replica.holds) {
                (false, _) => "no answer",
                (true, true) => "yes",
                (true, false) if replica.version.is_some() => "older version",
                (true, false) => "no",
            };
            vec![
                (index + 1).to_string(),
                replica.id.short(),
                replica.addr.to_string(),
                holds.to_string(),
            ]
        })
        .collect();
    format!(
        "{key} (key id {})\n{}",
        locations.key_id.short(),
        table(&["#", "REPLICA", "ADDR", "HOLDS NEWEST"], &rows)
    )
}

/// `cairn stat`: size, version, and how many replicas hold it.
pub fn stat_text(key: &str, locations: &Locations) -> String {
    let holding = locations.replicas.iter().filter(|r| r.holds).count();
    let state = match (&locations.version, locations.deleted) {
        (None, _) => "not found".to_string(),
        (Some(_), true) => "deleted".to_string(),
        (Some(_), false) => format!("{} bytes", locations.size.unwrap_or(0)),
    };
    table(
        &[],
        &[
            vec!["key".into(), key.to_string()],
            vec!["key id".into(), locations.key_id.to_string()],
            vec!["value".into(), state],
            vec!["version".into(), optional(&locations.version)],
            vec![
                "replicas".into(),
                format!(
                    "{holding} of {} hold the newest version",
                    locations.replicas.len()
                ),
            ],
        ],
    )
}

/// `cairn info`: the node, then its predecessor list, successor list and fingers.
pub fn info_text(info: &NodeInfo) -> String {
    let predecessor = match &info.predecessor {
        Some(peer) => format!("{} {}", peer.id.short(), peer.addr),
        None => "none (not yet known)".to_string(),
    };
    let mut out = table(
        &[],
        &[
            vec!["id".into(), info.id.to_string()],
            vec!["addr".into(), info.addr.to_string()],
            vec!["http".into(), optional(&info.http)],
            vec!["predecessor".into(), predecessor],
        ],
    );

    for (title, list) in [
        ("predecessors", &info.predecessors),
        ("successors", &info.successors),
    ] {
        out.push_str(&format!("\n\n{title} ({})\n", list.len()));
        let rows: Vec<Vec<String>> = list
            .iter()
            .enumerate()
            .map(|(index, peer)| {
                vec![
                    (index + 1).to_string(),
                    peer.id.short(),
                    peer.addr.to_string(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["#", "ID", "ADDR"], &rows)));
    }

    out.push_str(&format!("\n\nfingers ({})\n", info.fingers.len()));
    let rows: Vec<Vec<String>> = info
        .fingers
        .iter()
        .map(|finger| {
            vec![
                finger.start.short(),
                finger.node.id.short(),
                finger.node.addr.to_string(),
            ]
        })
        .collect();
    out.push_str(&indent(&table(&["START", "NODE", "ADDR"], &rows)));
    out
}

/// `cairn ring`: the members in ring order, then how many there are.
pub fn ring_text(ring: &RingView) -> String {
    let rows: Vec<Vec<String>> = ring
        .members
        .iter()
        .enumerate()
        .map(|(index, member)| {
            vec![
                (index + 1).to_string(),
                member.id.short(),
                member.addr.to_string(),
                optional(&member.http),
                state_name(member.state).to_string(),
                member
                    .stored
                    .map_or("-".to_string(), |s| s.records.to_string()),
                member
                    .stored
                    .map_or("-".to_string(), |s| bytes_text(s.bytes)),
            ]
        })
        .collect();
    let count = ring.members.len();
    format!(
        "{}\n{count} {}",
        table(
            &["#", "ID", "ADDR", "HTTP", "STATE", "RECORDS", "BYTES"],
            &rows
        ),
        if count == 1 { "member" } else { "members" }
    )
}

/// Bytes for people: `812 B`, `3.4 KiB`, `1.2 MiB`, `5.0 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `cairn lookup KEY`: `key "foo" (id 1a2b3c4d…) -> node 9f8e7d6c 127.0.0.1:7003 in 2 hops, 1.3 ms`.
pub fn lookup_text(key: &str, view: &LookupView) -> String {
    format!(
        "key {key:?} (id {}…) -> node {} in {} {}, {}",
        view.key_id.short(),
        peer_text(&view.node),
        view.hops,
        if view.hops == 1 { "hop" } else { "hops" },
        duration_text(view.micros)
    )
}

/// `cairn leave`.
pub fn leave_text(id: &NodeId) -> String {
    format!("node {} is leaving the ring", id.short())
}

/// `cairn leave --json`: `{"id": "<64 hex>", "state": "leaving"}`. The leave
/// endpoint defines no answer shape; this one reuses a member's fields.
pub fn leave_json(id: &NodeId) -> String {
    #[derive(Serialize)]
    struct Leaving<'a> {
        id: &'a NodeId,
        state: MemberState,
    }
    json(&Leaving {
        id,
        state: MemberState::Leaving,
    })
}

/// A duration given in microseconds, in the unit that reads best:
/// `850 µs`, `1.3 ms`, `2.41 s`.
pub fn duration_text(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1e3)
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

fn peer_text(peer: &Peer) -> String {
    format!("{} {}", peer.id.short(), peer.addr)
}

fn optional(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| NONE.to_string())
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Leaving => "leaving",
        MemberState::Dead => "dead",
    }
}

/// Left-aligned columns two spaces apart, sized to their widest cell; no
/// trailing spaces. An empty `headers` means no header line.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain([headers.len()])
        .max()
        .unwrap_or(0);
    let mut widths = vec![0; columns];
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let all_rows = (!headers.is_empty())
        .then_some(&header_row)
        .into_iter()
        .chain(rows);
    for row in all_rows.clone() {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let lines: Vec<String> = all_rows
        .map(|row| {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
            line.trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Id;
    use cairn_core::api::{Finger, Member, StoredTotals};

    fn id(hex8: &str) -> Id {
        Id::from_hex(&format!("{hex8}{}", "0".repeat(56))).expect("hex id")
    }

    fn peer(hex8: &str, addr: &str) -> Peer {
        Peer {
            id: NodeId(id(hex8)),
            addr: addr.parse().expect("addr"),
        }
    }

    fn sample_info() -> NodeInfo {
        NodeInfo {
            id: NodeId(id("9f8e7d6c")),
            addr: "127.0.0.1:7000".parse().expect("addr"),
            http: Some("127.0.0.1:7070".into()),
            predecessor: Some(peer("1a2b3c4d", "127.0.0.1:7001")),
            predecessors: vec![peer("1a2b3c4d", "127.0.0.1:7001")],
            successors: vec![
                peer("aa000001", "127.0.0.1:7002"),
                peer("bb000002", "127.0.0.1:7003"),
            ],
            fingers: vec![Finger {
                start: id("9f8e7d6d"),
                node: peer("aa000001", "127.0.0.1:7002"),
            }],
            stored: None,
            held: None,
            received: None,
        }
    }

    fn sample_ring() -> RingView {
        RingView {
            members: vec![
                Member {
                    id: NodeId(id("9f8e7d6c")),
                    addr: "127.0.0.1:7000".parse().expect("addr"),
                    http: Some("127.0.0.1:7070".into()),
                    state: MemberState::Alive,
                    stored: Some(StoredTotals {
                        records: 12,
                        tombstones: 1,
                        bytes: 2048,
                    }),
                },
                Member {
                    id: NodeId(id("aa000001")),
                    addr: "127.0.0.1:7002".parse().expect("addr"),
                    http: None,
                    state: MemberState::Suspect,
                    stored: None,
                },
            ],
        }
    }

    #[test]
    fn info_shows_the_node_then_predecessors_successors_and_fingers() {
        let text = info_text(&sample_info());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                &format!("id           9f8e7d6c{}", "0".repeat(56)),
                "addr         127.0.0.1:7000",
                "http         127.0.0.1:7070",
                "predecessor  1a2b3c4d 127.0.0.1:7001",
                "",
                "predecessors (1)",
                "  #  ID        ADDR",
                "  1  1a2b3c4d  127.0.0.1:7001",
                "",
                "successors (2)",
                "  #  ID        ADDR",
                "  1  aa000001  127.0.0.1:7002",
                "  2  bb000002  127.0.0.1:7003",
                "",
                "fingers (1)",
                "  START     NODE      ADDR",
                "  9f8e7d6d  aa000001  127.0.0.1:7002",
            ]
        );
    }

    #[test]
    fn info_of_a_lone_node_says_what_is_missing() {
        let mut info = sample_info();
        info.predecessor = None;
        info.http = None;
        info.successors.clear();
        info.fingers.clear();
        let text = info_text(&info);
        assert!(
            text.contains("\npredecessor  none (not yet known)\n"),
            "{text}"
        );
        assert!(text.contains("\nhttp         -\n"), "{text}");
        assert!(text.contains("successors (0)\n  #  ID  ADDR\n"), "{text}");
        assert!(text.ends_with("fingers (0)\n  START  NODE  ADDR"), "{text}");
    }

    #[test]
    fn ring_is_a_table_in_ring_order_with_a_count() {
        let text = ring_text(&sample_ring());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "#  ID        ADDR            HTTP            STATE    RECORDS  BYTES",
                "1  9f8e7d6c  127.0.0.1:7000  127.0.0.1:7070  alive    12       2.0 KiB",
                "2  aa000001  127.0.0.1:7002  -               suspect  -        -",
                "2 members",
            ]
        );
    }

    #[test]
    fn a_ring_of_one_is_one_member() {
        let mut ring = sample_ring();
        ring.members.truncate(1);
        assert!(ring_text(&ring).ends_with("\n1 member"));
    }

    #[test]
    fn lookup_names_the_key_node_hops_and_time() {
        let view = LookupView {
            key_id: id("1a2b3c4d"),
            node: peer("9f8e7d6c", "127.0.0.1:7003"),
            hops: 2,
            micros: 1_300,
        };
        assert_eq!(
            lookup_text("foo", &view),
            "key \"foo\" (id 1a2b3c4d…) -> node 9f8e7d6c 127.0.0.1:7003 in 2 hops, 1.3 ms"
        );
        let one_hop = LookupView {
            hops: 1,
            micros: 850,
            ..view
        };
        assert_eq!(
            lookup_text("a\nb", &one_hop),
            "key \"a\\nb\" (id 1a2b3c4d…) -> node 9f8e7d6c 127.0.0.1:7003 in 1 hop, 850 µs"
        );
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration_text(0), "0 µs");
        assert_eq!(duration_text(999), "999 µs");
        assert_eq!(duration_text(1_000), "1.0 ms");
        assert_eq!(duration_text(12_345), "12.3 ms");
        assert_eq!(duration_text(2_410_000), "2.41 s");
    }

    #[test]
    fn leave_names_the_short_id() {
        assert_eq!(
            leave_text(&NodeId(id("9f8e7d6c"))),
            "node 9f8e7d6c is leaving the ring"
        );
        let value: serde_json::Value =
            serde_json::from_str(&leave_json(&NodeId(id("9f8e7d6c")))).expect("json");
        assert_eq!(value["id"], format!("9f8e7d6c{}", "0".repeat(56)));
        assert_eq!(value["state"], "leaving");
    }

    #[test]
    fn json_is_exactly_the_api_shape() {
        let info = sample_info();
        let text = json(&info);
        let back: NodeInfo = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back, info);
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["predecessor"]["addr"], "127.0.0.1:7001");
        assert_eq!(
            value["fingers"][0]["node"]["id"],
            format!("aa000001{}", "0".repeat(56))
        );

        let ring: serde_json::Value = serde_json::from_str(&json(&sample_ring())).expect("json");
        assert_eq!(ring["members"][1]["state"], "suspect");
        assert_eq!(ring["members"][1]["http"], serde_json::Value::Null);
    }
}
