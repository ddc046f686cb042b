//! What a slot works on: an item's index and attempts ([`Work`]), and its values, chain of
//! pages and host ([`Item`]). Shared by the queue of retries and the hosts' look-ahead.

use super::hosts::{HostId, NONE};
use crate::template::Values;
use crate::worker::pages::Chain;

/// What a slot works on besides the item's index: the values that fill its placeholders and,
/// with `--next`, where its chain of pages stands.
#[derive(Debug, Clone)]
pub struct Item {
    pub values: Values,
    pub chain: Chain,
    /// Its host in the look-ahead's table, when the host varies (else `hosts::NONE`).
    pub host: HostId,
}

impl Default for Item {
    fn default() -> Self {
        Self {
            values: Values::default(),
            chain: Chain::default(),
            host: NONE,
        }
    }
}

/// An item and how many attempts it has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub index: u64,
    /// Attempts already made (0 for a new item).
    pub attempts: u32,
}
