//! `--auth-command` in a worker: the credentials the supervisor sends on stdin (a thread reads
//! them as they come), the request template rebuilt with them once per generation, and what a
//! slot does with a `401`: send again once with newer credentials, asking the supervisor for
//! them when it has none newer yet.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::request::{RequestTemplate, header_lines};
use crate::wire::{Frame, FrameReader};

/// How long a slot answered `401` waits for newer credentials before the `401` is its row.
const WAIT_FOR_NEWER: Duration = Duration::from_secs(10);
/// How often a waiting slot looks.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// The newest credentials received: written by the stdin thread, read by the slots.
#[derive(Default)]
struct Newest {
    /// Read on every request: an atomic, not the lock.
    generation: AtomicU64,
    lines: Mutex<String>,
}

/// A worker's credentials and the template that carries them.
pub struct Credentials {
    newest: Arc<Newest>,
    base: RequestTemplate,
    /// The template with the credentials of this generation.
    current: RefCell<(u64, Rc<RequestTemplate>)>,
    /// A generation answered `401`, for `tend` to tell the supervisor.
    stale: Cell<Option<u64>>,
    /// The newest generation told about (each is told once).
    told: Cell<u64>,
}

impl Credentials {
    /// Starts with `first` (its generation and header lines) and reads the next ones from
    /// `stdin` on a thread of their own until it ends.
    pub fn start<R: Read + Send + 'static>(
        base: RequestTemplate,
        first: (u64, String),
        mut stdin: FrameReader<R>,
    ) -> Credentials {
        let newest = Arc::new(Newest::default());
        let (generation, lines) = first;
        let template = Rc::new(base.with_headers(&header_lines(&lines)));
        *newest.lines.lock().unwrap_or_else(|e| e.into_inner()) = lines;
        newest.generation.store(generation, Ordering::Release);
        let reader = newest.clone();
        let _ = std::thread::Builder::new()
            .name("credentials".into())
            .spawn(move || {
                while let Ok(Some(frame)) = stdin.next_frame() {
                    if let Frame::Credentials { generation, lines } = frame {
                        *reader.lines.lock().unwrap_or_else(|e| e.into_inner()) = lines;
                        reader.generation.store(generation, Ordering::Release);
                    }
                }
            });
        Credentials {
            newest,
            base,
            current: RefCell::new((generation, template)),
            stale: Cell::new(None),
            told: Cell::new(0),
        }
    }

    fn newest(&self) -> u64 {
        self.newest.generation.load(Ordering::Acquire)
    }

    /// The template with the newest credentials, and their generation.
    pub fn template(&self) -> (Rc<RequestTemplate>, u64) {
        let newest = self.newest();
        let mut current = self.current.borrow_mut();
        if current.0 != newest {
            let lines = self.newest.lines.lock().unwrap_or_else(|e| e.into_inner());
            let template = self.base.with_headers(&header_lines(&lines));
            *current = (newest, Rc::new(template));
        }
        (current.1.clone(), current.0)
    }

    /// After a `401` with credentials of generation `used`: true once newer ones are here
    /// (asking the supervisor for them if none are), false if none come in time.
    pub async fn newer_than(&self, used: u64) -> bool {
        let given_up_at = Instant::now() + WAIT_FOR_NEWER;
        if self.newest() <= used && self.told.get() < used {
            self.stale.set(Some(used));
        }
        while self.newest() <= used {
            if Instant::now() >= given_up_at {
                return false;
            }
            monoio::time::sleep(LOOK_EVERY).await;
        }
        true
    }

    /// A generation answered `401` that the supervisor has not been told of.
    pub fn take_stale(&self) -> Option<u64> {
        let stale = self.stale.take()?;
        self.told.set(self.told.get().max(stale));
        Some(stale)
    }
}
