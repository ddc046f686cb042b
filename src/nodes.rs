//! Node slices: which part of the job this machine takes when a scheduler starts the same
//! command on M machines, so that no coordinator is needed. Slice K of M is the K-th of M
//! contiguous, near-equal parts of the item indexes (ids, or lines of `--ids-file`), cut as
//! shards are cut; the node then splits its slice over its own shards. `ringscrape merge` checks
//! afterwards that the slices' files together hold every item once.
//!
//! The index and count come from `--node-index`/`--node-count`, else from the scheduler's
//! environment: a Slurm job array (`SLURM_ARRAY_TASK_ID`, offset by `SLURM_ARRAY_TASK_MIN` and
//! divided by `SLURM_ARRAY_TASK_STEP`, out of `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed
//! Job (`JOB_COMPLETION_INDEX`; Kubernetes has no count variable, so `RINGSCRAPE_NODE_COUNT`).

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::ids::IdRange;

/// The hole in `--output` and `--bodies-dir` that becomes the node's index.
pub const NODE_HOLE: &str = "{node}";

/// Set by the user of a Kubernetes Indexed Job to its `completions`.
pub const K8S_COUNT_VAR: &str = "RINGSCRAPE_NODE_COUNT";

/// This machine's place among the nodes of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub index: u64,
    pub count: u64,
    /// Where the pair came from, as said on stderr.
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flags,
    /// Slurm job array; the task id and the array's lowest id, for the note.
    Slurm {
        task_id: u64,
        min: u64,
    },
    Kubernetes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("--node-index and --node-count go together: {0} was given alone")]
    Alone(&'static str),
    #[error("{0}=… is set but {1} is not{2}")]
    HalfEnvironment(&'static str, &'static str, &'static str),
    #[error("{0}={1:?}: not a whole number")]
    Number(&'static str, String),
    #[error("node count 0 (from {0}): must be at least 1")]
    NoNodes(String),
    #[error("node index {index} (from {from}) is not below the node count {count}{hint}")]
    OutOfRange {
        index: u64,
        count: u64,
        from: String,
        hint: &'static str,
    },
    #[error("node count {count} (from {from}): more nodes than the job's {items} items")]
    TooMany {
        count: u64,
        items: u64,
        from: String,
    },
    #[error("--{0} contains {NODE_HOLE} but this run is not one node of many (see --node-index)")]
    HoleWithoutNode(&'static str),
    #[error(
        "--{flag} {path}: nothing fills {{{name}}}, which would be part of the name as written; the only placeholder there is {NODE_HOLE}"
    )]
    UnfilledHole {
        flag: &'static str,
        path: String,
        name: String,
    },
}

const SLURM_HINT: &str = ": submit the array as --array=0-(M-1)";

impl Node {
    /// The node's place from the flags, else from the environment (`var` looks a variable up);
    /// `None` when neither says anything: the run is the whole job.
    pub fn find(
        index: Option<u64>,
        count: Option<u64>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Node>, NodeError> {
        let node = match (index, count) {
            (Some(index), Some(count)) => Node {
                index,
                count,
                source: Source::Flags,
            },
            (Some(_), None) => return Err(NodeError::Alone("--node-index")),
            (None, Some(_)) => return Err(NodeError::Alone("--node-count")),
            (None, None) => match from_environment(&var)? {
                Some(node) => node,
                None => return Ok(None),
            },
        };
        if node.count == 0 {
            return Err(NodeError::NoNodes(node.source.to_string()));
        }
        if node.index >= node.count {
            return Err(NodeError::OutOfRange {
                index: node.index,
                count: node.count,
                from: node.source.to_string(),
                hint: if matches!(node.source, Source::Slurm { .. }) {
                    SLURM_HINT
                } else {
                    ""
                },
            });
        }
        Ok(Some(node))
    }

    /// This node's slice of the job's item indexes. Refuses more nodes than items, as a node
    /// with nothing to do is a mistake in the submission.
    pub fn slice(&self, items: IdRange) -> Result<IdRange, NodeError> {
        if self.count > items.len() {
            return Err(NodeError::TooMany {
                count: self.count,
                items: items.len(),
                from: self.source.to_string(),
            });
        }
        Ok(items.part(self.index, self.count))
    }
}

/// `path` with every `{node}` replaced by the node's index; a `{node}` without a node is an
/// error naming `flag`, since every node would then write the same file.
pub fn expand_path(
    flag: &'static str,
    path: &Path,
    node: Option<&Node>,
) -> Result<PathBuf, NodeError> {
    let bytes = path.as_os_str().as_bytes();
    // Braces read as a request template reads them: `{nod}` is a typo, not a name.
    if let Some(name) = crate::template::unfilled(bytes, &["node"]).first() {
        return Err(NodeError::UnfilledHole {
            flag,
            path: path.display().to_string(),
            name: (*name).to_string(),
        });
    }
    let hole = NODE_HOLE.as_bytes();
    if !bytes.windows(hole.len()).any(|w| w == hole) {
        return Ok(path.to_path_buf());
    }
    let node = node.ok_or(NodeError::HoleWithoutNode(flag))?;
    let index = node.index.to_string();
    let mut out = Vec::with_capacity(bytes.len() + index.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(hole.len()).position(|w| w == hole) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(index.as_bytes());
        rest = &rest[at + hole.len()..];
    }
    out.extend_from_slice(rest);
    Ok(PathBuf::from(OsString::from_vec(out)))
}

fn number(name: &'static str, text: &str) -> Result<u64, NodeError> {
    text.trim()
        .parse()
        .map_err(|_| NodeError::Number(name, text.to_string()))
}

/// Slurm first (its variables are set in every task of an array), then Kubernetes.
fn from_environment(var: &impl Fn(&str) -> Option<String>) -> Result<Option<Node>, NodeError> {
    let get = |name: &'static str| var(name).filter(|v| !v.is_empty());
    let read = |name: &'static str| get(name).map(|v| number(name, &v)).transpose();
    if let Some(task_id) = read("SLURM_ARRAY_TASK_ID")? {
        let count = read("SLURM_ARRAY_TASK_COUNT")?.ok_or(NodeError::HalfEnvironment(
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_COUNT",
            "",
        ))?;
        let min = read("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = read("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let offset = task_id.checked_sub(min).ok_or(NodeError::OutOfRange {
            index: task_id,
            count,
            from: "SLURM_ARRAY_TASK_ID below SLURM_ARRAY_TASK_MIN".into(),
            hint: SLURM_HINT,
        })?;
        return Ok(Some(Node {
            index: offset / step,
            count,
            source: Source::Slurm { task_id, min },
        }));
    }
    let count = read(K8S_COUNT_VAR)?;
    match (read("JOB_COMPLETION_INDEX")?, count) {
        (Some(index), Some(count)) => Ok(Some(Node {
            index,
            count,
            source: Source::Kubernetes,
        })),
        (Some(_), None) => Err(NodeError::HalfEnvironment(
            "JOB_COMPLETION_INDEX",
            K8S_COUNT_VAR,
            " (Kubernetes has no count variable: set it to the Job's completions)",
        )),
        (None, Some(_)) => Err(NodeError::HalfEnvironment(
            K8S_COUNT_VAR,
            "a node index (--node-index, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)",
            "",
        )),
        (None, None) => Ok(None),
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flags => write!(f, "--node-index/--node-count"),
            Source::Slurm { task_id, min } => write!(
                f,
                "SLURM_ARRAY_TASK_ID={task_id} (SLURM_ARRAY_TASK_MIN={min}) and SLURM_ARRAY_TASK_COUNT"
            ),
            Source::Kubernetes => write!(f, "JOB_COMPLETION_INDEX and {K8S_COUNT_VAR}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn flags_win_and_must_come_in_pairs() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let node = Node::find(Some(2), Some(4), &slurm)
            .expect("valid")
            .expect("a node");
        assert_eq!((node.index, node.count, node.source), (2, 4, Source::Flags));
        assert_eq!(
            Node::find(Some(2), None, env(&[])),
            Err(NodeError::Alone("--node-index"))
        );
        assert_eq!(
            Node::find(None, Some(2), env(&[])),
            Err(NodeError::Alone("--node-count"))
        );
        assert!(matches!(
            Node::find(Some(3), Some(3), env(&[])),
            Err(NodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            Node::find(Some(0), Some(0), env(&[])),
            Err(NodeError::NoNodes(_))
        ));
        assert_eq!(Node::find(None, None, env(&[])), Ok(None));
    }

    #[test]
    fn slurm_arrays_are_offset_by_their_lowest_task_and_step() {
        let vars = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let node = Node::find(None, None, vars)
            .expect("valid")
            .expect("a node");
        assert_eq!((node.index, node.count), (2, 3));
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let node = Node::find(None, None, stepped)
            .expect("valid")
            .expect("a node");
        assert_eq!(node.index, 2);
        let gappy = env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let err = Node::find(None, None, gappy).expect_err("9 of 3");
        assert!(err.to_string().contains("--array=0-(M-1)"), "{err}");
        let half = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
        assert!(matches!(
            Node::find(None, None, half),
            Err(NodeError::HalfEnvironment(..))
        ));
    }

    #[test]
    fn kubernetes_needs_the_count_variable() {
        let vars = env(&[("JOB_COMPLETION_INDEX", "1"), (K8S_COUNT_VAR, "3")]);
        let node = Node::find(None, None, vars)
            .expect("valid")
            .expect("a node");
        assert_eq!(
            (node.index, node.count, node.source),
            (1, 3, Source::Kubernetes)
        );
        let err =
            Node::find(None, None, env(&[("JOB_COMPLETION_INDEX", "1")])).expect_err("no count");
        assert!(err.to_string().contains(K8S_COUNT_VAR), "{err}");
        assert!(Node::find(None, None, env(&[(K8S_COUNT_VAR, "3")])).is_err());
        assert!(matches!(
            Node::find(
                None,
                None,
                env(&[("JOB_COMPLETION_INDEX", "x"), (K8S_COUNT_VAR, "3")])
            ),
            Err(NodeError::Number("JOB_COMPLETION_INDEX", _))
        ));
    }

    #[test]
    fn slices_cover_the_job_and_too_many_nodes_are_refused() {
        let job = IdRange::new(0, 10);
        let slices: Vec<IdRange> = (0..3)
            .map(|index| {
                Node {
                    index,
                    count: 3,
                    source: Source::Flags,
                }
                .slice(job)
                .expect("fits")
            })
            .collect();
        assert_eq!(
            slices,
            [IdRange::new(0, 4), IdRange::new(4, 7), IdRange::new(7, 10)]
        );
        let crowded = Node {
            index: 0,
            count: 11,
            source: Source::Flags,
        };
        assert!(matches!(crowded.slice(job), Err(NodeError::TooMany { .. })));
    }

    #[test]
    fn the_node_hole_is_filled_in_paths() {
        let node = Node {
            index: 2,
            count: 3,
            source: Source::Flags,
        };
        let path = expand_path(
            "output",
            Path::new("out/{node}/part-{node}.csv"),
            Some(&node),
        );
        assert_eq!(path, Ok(PathBuf::from("out/2/part-2.csv")));
        assert_eq!(
            expand_path("output", Path::new("plain.csv"), None),
            Ok(PathBuf::from("plain.csv"))
        );
        assert_eq!(
            expand_path("output", Path::new("part-{node}.csv"), None),
            Err(NodeError::HoleWithoutNode("output"))
        );
        assert_eq!(
            expand_path("output", Path::new("part-{nodes}.csv"), None),
            Err(NodeError::UnfilledHole {
                flag: "output",
                path: "part-{nodes}.csv".into(),
                name: "nodes".into()
            })
        );
        assert_eq!(
            expand_path("output", Path::new("a {1} b.csv"), None),
            Ok(PathBuf::from("a {1} b.csv")),
            "no name, no placeholder"
        );
    }
}
