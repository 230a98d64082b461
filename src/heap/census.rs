//! Tallies of live objects per type: count, `getsizeof` bytes, footprint, how many were GC-tracked.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeTally {
    #[serde(rename = "type")]
    pub name: String,
    pub module: String,
    pub count: u64,
    pub bytes: u64,
    pub footprint: u64,
    pub tracked: u64,
}

/// The census of one heap.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Census {
    pub objects: u64,
    pub bytes: u64,
    pub footprint: u64,
    /// Objects on the GC lists (all generations and the permanent one).
    pub gc_tracked: u64,
    /// Objects inside binaries (static types, singletons, deep-frozen code): walked, not counted.
    pub static_objects: u64,
    /// Pointers that looked like references but led to no valid object.
    pub rejected_refs: u64,
    pub types: Vec<TypeTally>,
}

impl Census {
    /// Sort types by bytes, then count, then name: the order of the table and the JSON.
    pub fn sort(&mut self) {
        self.types.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(b.count.cmp(&a.count))
                .then(a.name.cmp(&b.name))
                .then(a.module.cmp(&b.module))
        });
    }
}
