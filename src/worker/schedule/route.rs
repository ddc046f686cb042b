//! Which worker an item belongs to when the URL's host varies: the one its host (name and port)
//! hashes to, so that every item of a host is one worker's and the limits per host
//! (`--host-concurrency`, `--host-rate`, a host's 429s) are kept in one place without sharing
//! anything between processes. The hash is FNV-1a with its fixed standard constants: the same in
//! every worker, every run and every build, so a resumed run routes each host as before.

use crate::request::RequestTemplate;
use crate::template::Values;

/// The shard (of `shards`) that fetches every item of `host`:`port`. Host names are compared
/// without case, as DNS does.
pub fn shard_of_host(host: &str, port: u16, shards: usize) -> usize {
    (host_hash(host, port) % shards.max(1) as u64) as usize
}

/// FNV-1a (64-bit) of the lower-cased host name and the port.
pub fn host_hash(host: &str, port: u16) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = host
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .chain(port.to_be_bytes());
    bytes.fold(OFFSET, |hash, b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// A worker's share of a run whose host varies.
pub struct HostRoute {
    template: RequestTemplate,
    shard: usize,
    shards: usize,
}

impl HostRoute {
    pub fn new(template: RequestTemplate, shard: usize, shards: usize) -> Self {
        Self {
            template,
            shard,
            shards: shards.max(1),
        }
    }

    /// Whether item `index` with `values` is this worker's. An item whose key makes no host
    /// (it becomes a `request` row without being sent) is routed by its index, so that exactly
    /// one worker writes its row.
    pub fn keeps(&self, index: u64, values: &Values) -> bool {
        let shard = match self.template.origin_of(values) {
            Ok(origin) if values.malformed.is_none() => {
                shard_of_host(&origin.host, origin.port, self.shards)
            }
            _ => (index % self.shards as u64) as usize,
        };
        shard == self.shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_goes_to_one_shard_whatever_its_case_and_hosts_spread_over_all() {
        assert_eq!(
            shard_of_host("Example.COM", 443, 7),
            shard_of_host("example.com", 443, 7)
        );
        // The port is part of the host's identity.
        let ports: std::collections::HashSet<usize> = (8000..8064)
            .map(|port| shard_of_host("127.0.0.1", port, 4))
            .collect();
        assert!(ports.len() > 1);
        // 10,000 hosts over 2 shards: near half each.
        let first = (0..10_000)
            .filter(|k| shard_of_host(&format!("127.0.{}.{}", k / 250, k % 250), 80, 2) == 0)
            .count();
        assert!((4_500..=5_500).contains(&first), "{first}");
        // Fixed forever: a resumed run (a new build) routes every host as before (values from
        // FNV-1a computed apart, in Python).
        assert_eq!(host_hash("", 0), 0x0832_8807_b4eb_6fed);
        assert_eq!(host_hash("Example.com", 443), 0xd380_b382_553d_967a);
    }

    #[test]
    fn every_item_is_kept_by_exactly_one_worker() {
        let spec = crate::request::RequestSpec::of_url("http://{id}:8080/x");
        let template = RequestTemplate::compile(&spec).expect("a template");
        let routes: Vec<HostRoute> = (0..3)
            .map(|shard| HostRoute::new(template.clone(), shard, 3))
            .collect();
        for (index, key) in ["a.example", "b.example", "A.example", "not a host!"]
            .iter()
            .enumerate()
        {
            let values = Values::one(key.as_bytes());
            let keepers = routes
                .iter()
                .filter(|r| r.keeps(index as u64, &values))
                .count();
            assert_eq!(keepers, 1, "{key}");
        }
        let a = Values::one(b"a.example");
        let upper = Values::one(b"A.example");
        let keeper = |v: &Values| routes.iter().position(|r| r.keeps(0, v));
        assert_eq!(keeper(&a), keeper(&upper));
    }
}
