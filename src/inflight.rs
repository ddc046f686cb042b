//! The items a worker has in flight, in memory it shares with its supervisor: one word per
//! slot, holding the index of the item the slot is fetching plus one (0: between items).
//!
//! A worker can die of one answer in a way nothing inside it can catch: a user's jq filter that
//! recurses without end overflows its stack, and the process aborts. The table outlives it, so
//! the supervisor learns which items were in flight and fetches them again one at a time to
//! find the one that kills (see `supervisor::keeper`). A store per request keeps it cheap.
//!
//! The table is a memfd the supervisor creates; a worker maps the same file, opened by its
//! `/proc` path, so no descriptor needs to be passed down.

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// One worker's table of the items its slots are fetching.
pub struct InFlightTable {
    words: NonNull<AtomicU64>,
    slots: usize,
    file: File,
}

// SAFETY: the mapping is owned by the table and only ever accessed through atomics.
unsafe impl Send for InFlightTable {}
// SAFETY: as above: every access is an atomic load or store.
unsafe impl Sync for InFlightTable {}

impl InFlightTable {
    /// A new table of `slots` words, all 0 (the supervisor's side).
    pub fn create(slots: usize) -> io::Result<InFlightTable> {
        let fd = memfd_create("ringscrape-in-flight", MFdFlags::MFD_CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(Self::bytes(slots).get() as u64)?;
        Self::map(file, slots)
    }

    /// Where a worker opens this table.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }

    /// The table at `path`, of `slots` words (a worker's side).
    pub fn open(path: &Path, slots: usize) -> io::Result<InFlightTable> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < Self::bytes(slots).get() as u64 {
            return Err(io::Error::other(
                "the in-flight table is smaller than asked",
            ));
        }
        Self::map(file, slots)
    }

    fn bytes(slots: usize) -> NonZeroUsize {
        NonZeroUsize::new(slots.max(1) * size_of::<AtomicU64>()).unwrap_or(NonZeroUsize::MIN)
    }

    fn map(file: File, slots: usize) -> io::Result<InFlightTable> {
        // SAFETY: a shared mapping of the file's first `bytes(slots)` bytes (the file is at
        // least that long), page-aligned, accessed only as `AtomicU64`s, unmapped on drop.
        let at = unsafe {
            mmap(
                None,
                Self::bytes(slots),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }?;
        Ok(InFlightTable {
            words: at.cast(),
            slots: slots.max(1),
            file,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `words` points at `slots` mapped, aligned words for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), self.slots) }
    }

    /// Slot `slot` is fetching item `index`.
    pub fn enter(&self, slot: usize, index: u64) {
        if let Some(word) = self.words().get(slot) {
            word.store(index.saturating_add(1), Ordering::Relaxed);
        }
    }

    /// Slot `slot` is between items.
    pub fn leave(&self, slot: usize) {
        if let Some(word) = self.words().get(slot) {
            word.store(0, Ordering::Relaxed);
        }
    }

    /// The items in flight, in slot order; the table is cleared for the next worker.
    pub fn take_items(&self) -> Vec<u64> {
        self.words()
            .iter()
            .filter_map(|word| word.swap(0, Ordering::Relaxed).checked_sub(1))
            .collect()
    }
}

impl Drop for InFlightTable {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of this length, not used after this.
        let _ = unsafe { munmap(self.words.cast(), Self::bytes(self.slots).get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_side_enters_the_other_reads_by_the_path() {
        let table = InFlightTable::create(8).expect("create");
        let worker = InFlightTable::open(&table.path(), 8).expect("open");
        worker.enter(0, 41);
        worker.enter(3, 0);
        worker.enter(5, 7);
        worker.leave(5);
        worker.enter(99, 1);
        drop(worker);
        assert_eq!(table.take_items(), vec![41, 0]);
        assert_eq!(table.take_items(), Vec::<u64>::new());
        assert!(InFlightTable::open(&table.path(), 1 << 20).is_err());
    }
}
