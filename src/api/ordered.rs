//! One scope's jobs (a namespace, or an experiment in it) kept in every order ListJobs can ask
//! for, so a page is a range walk: O(log n) to find where it starts, then one step per job.
//!
//! Each order is a B-tree keyed by (sort value, id), the same key and tie-break `list` pages by.
//! A key's strings are shared with the job's `Row` (`Arc<str>`), so an order costs a B-tree
//! entry per job and no copy of its strings.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::Arc,
};

use super::list::{Field, Key, Row, Sort};

/// A job as the orders hold it: what it is sorted and filtered by, and the job itself.
#[derive(Debug)]
pub struct Entry<T> {
    pub row: Row,
    pub item: T,
}

/// Where a page starts: after this sort value and id.
pub type Cursor = (Key, Arc<str>);

/// The fields a scope is ordered by: every field `list` accepts in `sort_by`.
const FIELDS: [Field; 6] = [
    Field::Id,
    Field::Name,
    Field::CreatedAt,
    Field::UpdatedAt,
    Field::Description,
    Field::PackageId,
];

type Order<T> = BTreeMap<Cursor, Arc<Entry<T>>>;

#[derive(Debug)]
pub struct Ordered<T> {
    by_id: HashMap<Arc<str>, Arc<Entry<T>>>,
    /// One per field of `FIELDS`, at the same position.
    orders: [Order<T>; FIELDS.len()],
}

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered {
            by_id: HashMap::new(),
            orders: Default::default(),
        }
    }
}

fn slot(field: Field) -> usize {
    FIELDS.iter().position(|f| *f == field).unwrap_or(0)
}

impl<T> Ordered<T> {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds the job with `row.id`, or replaces it (its sort values may have changed).
    pub fn upsert(&mut self, row: Row, item: T) {
        let id = row.id.clone();
        self.remove(&id);
        let entry = Arc::new(Entry { row, item });
        for (field, order) in FIELDS.iter().zip(self.orders.iter_mut()) {
            order.insert((entry.row.key(*field), id.clone()), entry.clone());
        }
        self.by_id.insert(id, entry);
    }

    /// Removes the job with this id; false when there was none.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.by_id.remove(id) else {
            return false;
        };
        for (field, order) in FIELDS.iter().zip(self.orders.iter_mut()) {
            order.remove(&(old.row.key(*field), old.row.id.clone()));
        }
        true
    }

    /// The jobs in `sort` order, from just after `after` (which need not exist any more) or
    /// from the start.
    pub fn walk<'a>(&'a self, sort: Sort, after: Option<&Cursor>) -> Box<dyn Iterator<Item = &'a Entry<T>> + 'a> {
        let order = &self.orders[slot(sort.field)];
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let entries: Box<dyn Iterator<Item = &'a Arc<Entry<T>>>> = if sort.desc {
            Box::new(order.range((Bound::Unbounded, start)).rev().map(|(_, e)| e))
        } else {
            Box::new(order.range((start, Bound::Unbounded)).map(|(_, e)| e))
        };
        Box::new(entries.map(|e| &**e))
    }

    /// Every job, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry<T>> {
        self.by_id.values().map(|e| &**e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, created: i64) -> Row {
        Row {
            id: id.into(),
            name: name.into(),
            created_at: created,
            ..Default::default()
        }
    }

    fn ids(o: &Ordered<()>, sort: Sort, after: Option<&Cursor>) -> Vec<String> {
        o.walk(sort, after).map(|e| e.row.id.to_string()).collect()
    }

    fn by(field: Field, desc: bool) -> Sort {
        Sort { field, desc }
    }

    #[test]
    fn every_order_breaks_ties_by_id_and_reverses_whole_for_desc() {
        let mut o = Ordered::default();
        for (id, name, t) in [("b", "x", 2), ("a", "x", 2), ("c", "w", 1)] {
            o.upsert(row(id, name, t), ());
        }
        assert_eq!(ids(&o, by(Field::CreatedAt, false), None), ["c", "a", "b"]);
        assert_eq!(ids(&o, by(Field::CreatedAt, true), None), ["b", "a", "c"]);
        assert_eq!(ids(&o, by(Field::Name, false), None), ["c", "a", "b"]);
        assert_eq!(ids(&o, by(Field::Id, true), None), ["c", "b", "a"]);
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn an_update_moves_the_job_and_leaves_no_stale_key() {
        let mut o = Ordered::default();
        o.upsert(row("a", "alpha", 1), ());
        o.upsert(row("b", "beta", 2), ());
        o.upsert(row("a", "zeta", 3), ());
        assert_eq!(o.len(), 2);
        assert_eq!(ids(&o, by(Field::Name, false), None), ["b", "a"]);
        assert_eq!(ids(&o, by(Field::CreatedAt, true), None), ["a", "b"]);
        for order in &o.orders {
            assert_eq!(order.len(), 2, "one key per job in every order");
        }
    }

    #[test]
    fn a_remove_takes_the_job_out_of_every_order() {
        let mut o = Ordered::default();
        o.upsert(row("a", "alpha", 1), ());
        o.upsert(row("b", "beta", 2), ());
        assert!(o.remove("a"));
        assert!(!o.remove("a"), "already gone");
        for field in FIELDS {
            assert_eq!(ids(&o, by(field, false), None), ["b"], "{field:?}");
        }
        assert!(o.orders.iter().all(|order| order.len() == 1));
    }

    #[test]
    fn a_walk_starts_after_a_cursor_that_names_a_deleted_job() {
        let mut o = Ordered::default();
        for (id, t) in [("a", 1), ("b", 2), ("c", 2), ("d", 3)] {
            o.upsert(row(id, "n", t), ());
        }
        o.remove("b");
        let cursor: Cursor = (Key::Int(2), "b".into());
        assert_eq!(ids(&o, by(Field::CreatedAt, false), Some(&cursor)), ["c", "d"]);
        assert_eq!(ids(&o, by(Field::CreatedAt, true), Some(&cursor)), ["a"]);
    }
}
