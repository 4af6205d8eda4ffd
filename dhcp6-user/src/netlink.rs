//! Kernel routes for delegated prefixes, through rtnetlink: a prefix via the client's
//! link-local address out of its access interface, tagged with our own routing protocol id
//! so that we find (and only touch) ours.

use std::net::Ipv6Addr;

use futures_util::TryStreamExt;
use ipnet::Ipv6Net;
use rtnetlink::{
    packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol},
    Handle, RouteMessageBuilder,
};

/// Why a route could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("opening a netlink socket: {0}")]
    Connect(#[from] std::io::Error),
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
}

/// One of our routes as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdRoute {
    pub prefix: Ipv6Net,
    pub via: Ipv6Addr,
    pub ifindex: u32,
    /// Its metric (the kernel's priority): part of an IPv6 route's identity, so that one
    /// prefix may have routes at two metrics.
    pub metric: u32,
}

/// Installs and removes delegated-prefix routes.
pub struct PdRoutes {
    handle: Handle,
    protocol: u8,
}

impl PdRoutes {
    /// Opens the netlink connection (its task runs on the current tokio runtime).
    pub fn connect(protocol: u8) -> Result<PdRoutes, RouteError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(PdRoutes { handle, protocol })
    }

    fn message(&self, r: &PdRoute) -> RouteMessage {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(r.prefix.network(), r.prefix.prefix_len())
            .gateway(r.via)
            .output_interface(r.ifindex)
            .protocol(RouteProtocol::from(self.protocol))
            .priority(r.metric)
            .build()
    }

    /// Adds the route, or replaces the one to the same prefix at the same metric (idempotent).
    pub async fn replace(&self, r: &PdRoute) -> Result<(), RouteError> {
        Ok(self.handle.route().add(self.message(r)).replace().execute().await?)
    }

    pub async fn remove(&self, r: &PdRoute) -> Result<(), RouteError> {
        Ok(self.handle.route().del(self.message(r)).execute().await?)
    }

    /// Every IPv6 route carrying our protocol id.
    pub async fn ours(&self) -> Result<Vec<PdRoute>, RouteError> {
        let query = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let mut routes = self.handle.route().get(query).execute();
        let mut out = Vec::new();
        while let Some(m) = routes.try_next().await? {
            if u8::from(m.header.protocol) != self.protocol {
                continue;
            }
            let (mut dst, mut via, mut ifindex, mut metric) = (None, None, None, 0);
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = Some(*d),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => via = Some(*g),
                    RouteAttribute::Oif(i) => ifindex = Some(*i),
                    RouteAttribute::Priority(p) => metric = *p,
                    _ => {}
                }
            }
            if let (Some(d), Some(via), Some(ifindex)) = (dst, via, ifindex) {
                if let Ok(prefix) = Ipv6Net::new(d, m.header.destination_prefix_length) {
                    out.push(PdRoute { prefix, via, ifindex, metric });
                }
            }
        }
        Ok(out)
    }
}
