//! Loading the XDP program into the kernel, attaching it to an interface, and reading its
//! counters. The object is built by `build.rs` and embedded in the binary.

use aya::{
    maps::PerCpuArray,
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfError,
};
use dhcp6_common::{counters::Verdict, maps, MessageType, XDP_PROGRAM};

/// The XDP object, aligned as aya's ELF parser needs it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dhcp6-ebpf"));

/// Why the XDP program could not be loaded, attached or read.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("map {name}: {source}")]
    Map { name: &'static str, source: aya::maps::MapError },
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
}

/// The loaded XDP program. Dropping it detaches the program from every interface.
pub struct XdpProgram {
    ebpf: Ebpf,
}

/// A snapshot of the program's counters, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Messages seen per DHCPv6 message type byte, only the types seen.
    pub by_msg_type: Vec<(u8, u64)>,
    /// Frames per verdict, every verdict.
    pub by_verdict: Vec<(Verdict, u64)>,
}

impl XdpCounters {
    /// Count of messages with this type.
    pub fn msg_type(&self, t: MessageType) -> u64 {
        self.by_msg_type.iter().find(|(ty, _)| *ty == t as u8).map_or(0, |(_, n)| *n)
    }

    /// Count of frames with this verdict.
    pub fn verdict(&self, v: Verdict) -> u64 {
        self.by_verdict.iter().find(|(vv, _)| *vv == v).map_or(0, |(_, n)| *n)
    }
}

impl std::fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (verdict, n) in &self.by_verdict {
            writeln!(f, "verdict {:<14} {n}", verdict.name())?;
        }
        for (t, n) in &self.by_msg_type {
            let name = MessageType::from_u8(*t).map_or("unknown", MessageType::name);
            writeln!(f, "msg-type {t:>3} {name:<20} {n}")?;
        }
        Ok(())
    }
}

impl XdpProgram {
    /// Loads the embedded object and verifies the program; nothing is attached yet.
    pub fn load() -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT)?;
        program_mut(&mut ebpf)?.load()?;
        Ok(XdpProgram { ebpf })
    }

    /// Attaches to `interface` in `mode` (native, `XdpMode::Driver`, on real NICs and veth).
    pub fn attach(&mut self, interface: &str, mode: XdpMode) -> Result<(), XdpError> {
        program_mut(&mut self.ebpf)?.attach(interface, mode)?;
        Ok(())
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN) and returns its XDP action.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        use aya::programs::{TestRun, TestRunOptions};
        let program: &Xdp = self.ebpf.program(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?;
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), ..Default::default() };
        Ok(program.test_run(opts)?.return_value)
    }

    /// Reads every counter, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let by_msg_type = per_cpu_sums(&self.ebpf, maps::MSG_TYPE_COUNTS)?
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            // The map has 256 slots, one per type byte.
            .map(|(t, n)| (t as u8, n))
            .collect();
        let verdicts = per_cpu_sums(&self.ebpf, maps::VERDICT_COUNTS)?;
        let by_verdict = Verdict::ALL.iter().map(|v| (*v, verdicts.get(*v as usize).copied().unwrap_or(0))).collect();
        Ok(XdpCounters { by_msg_type, by_verdict })
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    Ok(ebpf.program_mut(XDP_PROGRAM).ok_or(XdpError::Missing("XDP program"))?.try_into()?)
}

/// Every slot of a per-CPU `u64` array, each summed over CPUs.
fn per_cpu_sums(ebpf: &Ebpf, name: &'static str) -> Result<Vec<u64>, XdpError> {
    let map = ebpf.map(name).ok_or(XdpError::Missing(name))?;
    let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|source| XdpError::Map { name, source })?;
    (0..array.len())
        .map(|i| {
            let values = array.get(&i, 0).map_err(|source| XdpError::Map { name, source })?;
            Ok(values.iter().sum())
        })
        .collect()
}
