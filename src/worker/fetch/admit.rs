//! `--robots` at the slot: before an item's request goes, what its origin's robots.txt says of
//! it (the worker's [`crate::worker::robots::Robots`] fetches each origin's once), then the
//! host's `Crawl-delay` waited for. A URL it forbids is never requested: its row says `robots`.

use super::Slot;
use crate::model::ErrorKind;
use crate::request::Origin;
use crate::template::Values;
use crate::worker::failure::Failure;

impl Slot {
    /// `Err` (kind `robots`) when the origin's robots.txt forbids the request for `values` (or
    /// the page `prepare_request` chose); else waits for the host's `Crawl-delay`.
    pub(super) async fn obey_robots(&mut self, values: &Values) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let Some(robots) = &plan.robots else {
            return Ok(());
        };
        let (origin, target) = match &self.page_hop {
            Some(hop) => (hop.origin.clone(), hop.target.clone()),
            None => match plan.template.origin_of(values) {
                Ok(origin) => (origin, plan.template.target(values)),
                // Not a host: the request fails as `request` when it is built.
                Err(_) => return Ok(()),
            },
        };
        let dialer_for = |origin: &Origin| plan.dialer_for(origin);
        let deadline = plan.limits.timeout;
        if let Err(why) = robots.allows(&origin, &target, &dialer_for, deadline).await {
            return Err(Failure {
                kind: ErrorKind::Robots,
                answered: false,
                detail: why,
            });
        }
        robots.space(&origin).await;
        Ok(())
    }
}
