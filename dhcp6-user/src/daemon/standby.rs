//! The standby's driver piece: the standby engine with the tasks that feed it (keepalived's
//! notify FIFO, the kernel's address events, a task per backup link) and the queues its
//! messages leave by.

use anyhow::{Context, Result};
use dhcp6_engine::relay::standby::{link::LinkMessage, Standby};
use tokio::sync::mpsc;
use tracing::info;

use super::{
    backup_link, input::Input, interface::interface_addresses, link_tls::LinkTlsEnd, virtual_address,
    virtual_address::Watched, vrrp_fifo,
};
use crate::relay::RelayConfig;

pub struct StandbyDriver {
    pub engine: Standby,
    /// Per backup service, where its messages are queued.
    links: Vec<mpsc::Sender<LinkMessage>>,
    /// This relay's name in its Hello.
    pub node: String,
    /// The profiles' virtual addresses, followed through rtnetlink.
    watched: Vec<Watched>,
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
        let watched: Vec<Watched> = standby
            .profiles
            .iter()
            .enumerate()
            .filter_map(|(profile, p)| {
                let interfaces = p.access.iter().filter_map(|&a| config.interfaces.get(a)).map(|i| i.name.clone());
                Some(Watched { profile, address: p.virtual_address?, interfaces: interfaces.collect() })
            })
            .collect();
        if !watched.is_empty() {
            virtual_address::subscribe(watched.clone(), tx.clone())
                .context("subscribing to the kernel's address changes for the virtual addresses")?;
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let node = match hostname.trim() {
            "" => "dhcp6d".to_string(),
            name => name.to_string(),
        };
        info!(profiles = standby.profiles.len(), services = standby.services.len(), node = %node, "relay hot standby on");
        Ok(Some(StandbyDriver { engine, links, node, watched }))
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
    /// kernel lists addresses now: `(profile, present)` for the profiles that have one. Read
    /// at start; changes after it come as events.
    pub fn virtual_addresses(&self) -> Vec<(usize, bool)> {
        if self.watched.is_empty() {
            return Vec::new();
        }
        virtual_address::present(&self.watched, &interface_addresses())
    }
}
