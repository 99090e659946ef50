//! The ids that name requests in flight, both ways: [`RpcId`] for a request
//! this node sent (its answer or failure is reported back under it), and
//! [`InboundId`] for a request this node received and may answer later.
//!
//! Invariant: an [`RpcId`] names the state machine that sent the request in
//! its low bits, so the host routes an answer without looking anything up,
//! and two machines can never hand out the same id.

use std::fmt;

/// The state machines of a host that send requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// Membership: join, stabilize, fingers, lookups, liveness.
    Ring,
    /// Replication: client operations and the replica side.
    Kv,
}

impl Machine {
    /// Bits of an [`RpcId`] that name the machine.
    const BITS: u32 = 4;

    fn tag(self) -> u64 {
        match self {
            Machine::Ring => 0,
            Machine::Kv => 1,
        }
    }

    fn from_tag(tag: u64) -> Option<Machine> {
        match tag {
            0 => Some(Machine::Ring),
            1 => Some(Machine::Kv),
            _ => None,
        }
    }
}

/// Names one request this node sent, so that its answer can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RpcId(u64);

impl RpcId {
    /// The id of request number `seq` of `machine`.
    pub fn new(machine: Machine, seq: u64) -> RpcId {
        RpcId((seq << Machine::BITS) | machine.tag())
    }

    /// Which machine sent it (`None` for an id no machine made).
    pub fn machine(self) -> Option<Machine> {
        Machine::from_tag(self.0 & ((1 << Machine::BITS) - 1))
    }

    /// The machine's own number for it.
    pub fn seq(self) -> u64 {
        self.0 >> Machine::BITS
    }
}

impl fmt::Display for RpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rpc {}", self.0)
    }
}

/// Names one request this node received and answers later (with
/// `Respond { inbound, .. }`), e.g. once its work is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_id_names_its_machine_and_number() {
        let id = RpcId::new(Machine::Ring, 12345);
        assert_eq!(id.machine(), Some(Machine::Ring));
        assert_eq!(id.seq(), 12345);
    }

    #[test]
    fn an_id_no_machine_made_names_none() {
        assert_eq!(RpcId(0xf).machine(), None);
        let kv = RpcId::new(Machine::Kv, 7);
        assert_eq!((kv.machine(), kv.seq()), (Some(Machine::Kv), 7));
    }
}
