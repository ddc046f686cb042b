//! When an item is tried: the items in order (`cursor`), the retries and next pages waiting
//! for their time (`queue`), how many slots may send (`limit`), the rate gate (`gate`), the
//! retry policy (`retry`) and the body-memory budget that holds new requests back (`memory`).

pub(super) mod cursor;
pub(super) mod gate;
pub(super) mod hosts;
pub(super) mod item;
pub(super) mod limit;
pub(super) mod lookahead;
pub(super) mod memory;
pub(super) mod queue;
pub(super) mod quota;
pub(super) mod retry;
pub(super) mod route;
