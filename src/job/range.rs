//! An id range (`--ids A..B`): the index is the id, `{id}` its decimal form. Nothing to scan or
//! read: a shard's items are computed from their indexes.

use crate::template::Values;

/// The values of item `index` of a range into `values` (cleared by the caller): `{id}` alone.
pub fn read_values(index: u64, values: &mut Values) {
    values.push(Some(itoa::Buffer::new().format(index).as_bytes()));
}
