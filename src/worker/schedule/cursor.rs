//! Hands out a shard's items one at a time, with their values: ids of a range, lines of a file
//! of keys, or records of key files, skipping those already done (and empty lines), and, when
//! the host varies, those whose host is another worker's (`route`). All on the worker's one
//! thread.

use std::cell::{Cell, RefCell};

use crate::ids::{IdRange, IdSet};
use crate::job::ItemReader;
use crate::template::Values;

use super::route::HostRoute;

/// Hands out the shard's items one at a time, with their keys, skipping those already done
/// (and, for a file of keys, the empty lines); `stop` makes it hand out no more.
pub struct Cursor {
    next: Cell<u64>,
    end: u64,
    skip: Option<IdSet>,
    keys: RefCell<ItemReader>,
    stopped: Cell<bool>,
    /// When the host varies: which items are this worker's.
    route: Option<HostRoute>,
}

impl Cursor {
    pub fn new(ids: IdRange, skip: Option<IdSet>, keys: ItemReader) -> Self {
        Self {
            next: Cell::new(ids.start),
            end: ids.end,
            skip,
            keys: RefCell::new(keys),
            stopped: Cell::new(false),
            route: None,
        }
    }

    /// Hands out only the items `route` gives this worker.
    pub fn routed(mut self, route: Option<HostRoute>) -> Self {
        self.route = route;
        self
    }

    /// The next item's index, its values written into `values`.
    pub fn next(&self, values: &mut Values) -> Option<u64> {
        loop {
            let id = self.next_in_range(values)?;
            if self
                .route
                .as_ref()
                .is_none_or(|route| route.keeps(id, values))
            {
                return Some(id);
            }
        }
    }

    /// The next item of the range not skipped, whoever's it is.
    fn next_in_range(&self, values: &mut Values) -> Option<u64> {
        let mut id = self.next.get();
        while let Some(skip) = &self.skip
            && id < self.end
            && skip.contains(id)
        {
            id += 1;
        }
        if self.stopped.get() || id >= self.end {
            self.next.set(id);
            return None;
        }
        self.next.set(id + 1);
        let mut keys = self.keys.borrow_mut();
        match keys.values_for(id, values) {
            Ok(true) => Some(id),
            Ok(false) => {
                crate::say!(
                    "ringscrape: the {} file ended before item {id}; was it changed?",
                    keys.source()
                );
                self.stop();
                None
            }
            Err(e) => {
                crate::say!("ringscrape: reading the {} file: {e}", keys.source());
                self.stop();
                None
            }
        }
    }

    pub fn stop(&self) {
        self.stopped.set(true);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Keys;

    fn all(cursor: &Cursor) -> Vec<(u64, String)> {
        let mut key = Values::default();
        std::iter::from_fn(|| {
            let id = cursor.next(&mut key)?;
            Some((id, String::from_utf8_lossy(key.id()).into_owned()))
        })
        .collect()
    }

    #[test]
    fn cursor_hands_out_each_id_once_and_stops_on_request() {
        let cursor = Cursor::new(IdRange::new(5, 9), None, ItemReader::Numbers);
        let mut key = Values::default();
        assert_eq!(cursor.next(&mut key), Some(5));
        assert_eq!((cursor.next(&mut key), key.id()), (Some(6), &b"6"[..]));
        cursor.stop();
        assert_eq!(cursor.next(&mut key), None);
        let cursor = Cursor::new(IdRange::new(0, 2), None, ItemReader::Numbers);
        assert_eq!(all(&cursor), vec![(0, "0".into()), (1, "1".into())]);
    }

    #[test]
    fn cursor_reads_its_lines_of_a_key_file_skipping_done_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "a\nb b\n\nd/e\nf\n").expect("write");
        let file = crate::job::KeyFile::scan(&path).expect("scan");
        // Lines 2..=5 of the file; line 3 is empty, line 5 already done.
        let range = IdRange::new(2, 6);
        let mut skip = file.empty.restrict(range);
        skip.insert(5);
        let (line, offset) = file.start_for(2);
        let keys = ItemReader::open(&Keys::Lines { path, line, offset }).expect("open");
        let cursor = Cursor::new(range, Some(skip), keys);
        assert_eq!(all(&cursor), vec![(2, "b b".into()), (4, "d/e".into())]);
    }

    #[test]
    fn cursor_skips_ids_already_done() {
        let range = IdRange::new(10, 20);
        let mut done = IdSet::new(range);
        for id in [10, 11, 14, 19] {
            done.insert(id);
        }
        let cursor = Cursor::new(range, Some(done), ItemReader::Numbers);
        let ids: Vec<u64> = all(&cursor).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![12, 13, 15, 16, 17, 18]);
    }
}
