//! The standby's driver piece: the standby engine with the tasks that feed it (keepalived's
//! notify FIFO, a task per backup link) and the queues its messages leave by.

use anyhow::{Context, Result};
use dhcp6_engine::relay::standby::{link::LinkMessage, Standby};
use tokio::sync::mpsc;
use tracing::info;

use super::{backup_link, input::Input, interface::interface_addresses, link_tls::LinkTlsEnd, vrrp_fifo};
use crate::relay::RelayConfig;

pub struct StandbyDriver {
    pub engine: Standby,
    /// Per backup service, where its messages are queued.
    links: Vec<mpsc::Sender<LinkMessage>>,
    /// This relay's name in its Hello.
    pub node: String,
}

impl StandbyDriver {
    /// Starts following keepalived and the backup links, when the relay has standby profiles;
    /// fails when a link's TLS files cannot be used.
    pub fn start(config: &RelayConfig, now: u64, tx: &mpsc::Sender<Input>) -> Result<Option<StandbyDriver>> {
        let engine = Standby::new(config, now);
        if !engine.is_on() {
            return Ok(None);
        }
        let standby = &config.standby;
        let mut links = Vec::new();
        for (n, service) in standby.services.iter().enumerate() {
            let tls = match &service.tls {
                Some(t) => Some(
                    LinkTlsEnd::load(t, service.connects())
                        .with_context(|| format!("TLS for the backup link {:?}", service.name))?,
                ),
                None => None,
            };
            links.push(backup_link::spawn(n, service.clone(), tls, tx.clone()));
        }
        if let Some(fifo) = &standby.notify_fifo {
            vrrp_fifo::spawn(fifo.clone(), tx.clone());
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let node = match hostname.trim() {
            "" => "dhcp6d".to_string(),
            name => name.to_string(),
        };
        info!(profiles = standby.profiles.len(), services = standby.services.len(), node = %node, "relay hot standby on");
        Ok(Some(StandbyDriver { engine, links, node }))
    }

    /// Whether service `service`'s queue is empty: its link has taken everything queued.
    pub fn drained(&self, service: usize) -> bool {
        self.links.get(service).is_some_and(|l| l.capacity() == l.max_capacity())
    }

    /// Queues messages on their links; one that does not fit makes the engine send a batch
    /// instead.
    pub fn send(&mut self, messages: Vec<(usize, LinkMessage)>) {
        for (service, m) in messages {
            let Some(link) = self.links.get(service) else { continue };
            if link.try_send(m).is_err() {
                self.engine.lost_messages(service);
            }
        }
    }

    /// Whether each profile's virtual address is on one of its access interfaces, as the
    /// kernel lists addresses now: `(profile, present)` for the profiles that have one.
    pub fn virtual_addresses(&self, config: &RelayConfig) -> Vec<(usize, bool)> {
        let profiles = &self.engine.config().profiles;
        if profiles.iter().all(|p| p.virtual_address.is_none()) {
            return Vec::new();
        }
        let addresses = interface_addresses();
        let mut out = Vec::new();
        for (n, p) in profiles.iter().enumerate() {
            let Some(v) = p.virtual_address else { continue };
            let names: Vec<&str> =
                p.access.iter().filter_map(|&a| config.interfaces.get(a)).map(|i| i.name.as_str()).collect();
            out.push((n, addresses.iter().any(|a| a.address == v && names.contains(&a.name.as_str()))));
        }
        out
    }
}
