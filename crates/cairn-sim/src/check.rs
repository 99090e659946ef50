//! The invariants of the ring (DESIGN.md, Ring maintenance), checked against
//! the true membership:
//!
//! - every member's first successor is the next member clockwise (so there
//!   is one ring, and following first successors visits every member once);
//! - every member's predecessor is the previous member;
//! - successor lists are ordered and hold the next min(L, M - 1) members;
//! - predecessor lists hold the previous min(R, M - 1) members, in order
//!   counter-clockwise;
//! - no member lists itself or a duplicate.

use crate::sim::Sim;
use cairn_core::Peer;

/// The first broken invariant found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub node: String,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}: {}", self.node, self.what)
    }
}

fn shorts(peers: &[Peer]) -> String {
    let ids: Vec<String> = peers.iter().map(|p| p.id.short()).collect();
    format!("[{}]", ids.join(", "))
}

/// Checks every invariant; `Ok` if the ring is correct.
pub fn check_ring(sim: &Sim) -> Result<(), Violation> {
    let members: Vec<Peer> = sim.members().copied().collect();
    let count = members.len();
    if count == 0 {
        return Ok(());
    }
    let list_len = sim.config.successor_list_len.min(count - 1);
    let predecessor_len = sim.config.replicas.min(count - 1);
    for (index, member) in members.iter().enumerate() {
        let fail = |what: String| Violation {
            node: member.id.short(),
            what,
        };
        let Some(node) = sim.node(member.id) else {
            return Err(fail("is a member but not running".into()));
        };
        let table = node.routing();
        let expected: Vec<Peer> = (1..=list_len)
            .map(|k| members[(index + k) % count])
            .collect();
        let got = table.successors();
        if got.first().map(|p| p.id) != expected.first().map(|p| p.id) {
            return Err(fail(format!(
                "first successor is {:?}, the next member is {:?}",
                got.first().map(|p| p.id.short()),
                expected.first().map(|p| p.id.short())
            )));
        }
        if got != expected.as_slice() {
            return Err(fail(format!(
                "successor list {} but the next members are {}",
                shorts(got),
                shorts(&expected)
            )));
        }
        let expected_predecessors: Vec<Peer> = (1..=predecessor_len)
            .map(|k| members[(index + count - k) % count])
            .collect();
        let got_predecessors = table.predecessors();
        let expected_predecessor = (count > 1).then(|| members[(index + count - 1) % count]);
        if table.predecessor().map(|p| p.id) != expected_predecessor.map(|p| p.id) {
            return Err(fail(format!(
                "predecessor is {:?}, the previous member is {:?}",
                table.predecessor().map(|p| p.id.short()),
                expected_predecessor.map(|p| p.id.short())
            )));
        }
        if got_predecessors != expected_predecessors.as_slice() {
            return Err(fail(format!(
                "predecessor list {} but the previous members are {}",
                shorts(got_predecessors),
                shorts(&expected_predecessors)
            )));
        }
    }
    Ok(())
}
