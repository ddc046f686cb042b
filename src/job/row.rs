//! How a row names its item and which of the item's values it carries: the part of the job's
//! shape that travels in the row [`Schema`](crate::model::Schema) to the workers and the writers.
//! The columns it adds are answered here (their names, the flags that put them there, what the
//! `id` column holds), so that no writer or reader asks which shape made the rows.

use serde::{Deserialize, Serialize};

/// How a row names its item, and so which column holds the item's index (what resume, node
/// slices and `merge` go by).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Items {
    /// Ids of a range, or records of key files without `--ids`: the `id` column is the index.
    #[default]
    Ids,
    /// Lines of an `--ids-file`: `id` holds the line's key, a `line` column the index.
    Lines,
    /// `--ids` × key files: `id` holds the id (the index divided by `per_id`, the records of
    /// the key files' product), an `index` column the index.
    Product { per_id: u64 },
}

impl Items {
    /// The column after the fixed ones that holds the index, with the flag that puts it there
    /// (for a clash of names); `None` when the `id` column is the index.
    pub fn index_column(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Items::Ids => None,
            Items::Lines => Some(("line", "--ids-file (its line column)")),
            Items::Product { .. } => Some(("index", "--ids with --keys (the index column)")),
        }
    }

    /// The name of the column that holds the index: `line`, `index`, else `id`.
    pub fn index_column_name(&self) -> &'static str {
        self.index_column().map_or("id", |(name, _)| name)
    }

    /// The id of the item at `index` (the `id` column of a range or a product).
    pub fn id_of(&self, index: u64) -> u64 {
        match self {
            Items::Product { per_id } => index / (*per_id).max(1),
            Items::Ids | Items::Lines => index,
        }
    }

    /// True when the `id` column holds the item's key (text from a file), not a number.
    pub fn id_is_key(&self) -> bool {
        matches!(self, Items::Lines)
    }
}

/// What a key file's column holds, as its rows keep it: text from a CSV; typed from JSON Lines
/// and Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    Text,
    Integer,
    Float,
    Boolean,
}

/// A key file's column: a placeholder `{name}` and a column of the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    pub name: String,
    pub kind: KeyKind,
    /// The `--keys` file it comes from (for messages).
    pub file: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_naming_items_says_its_index_column_and_id() {
        assert_eq!(Items::Ids.index_column_name(), "id");
        assert_eq!(Items::Lines.index_column_name(), "line");
        let product = Items::Product { per_id: 365 };
        assert_eq!(product.index_column_name(), "index");
        assert_eq!(product.id_of(365 * 7 + 364), 7);
        assert_eq!(Items::Lines.id_of(12), 12);
        assert!(Items::Lines.id_is_key() && !product.id_is_key() && !Items::Ids.id_is_key());
    }
}
