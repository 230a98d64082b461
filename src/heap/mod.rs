//! Walking the target's heap in a local snapshot: GC lists, roots, per-type reference decoding, sizes, census.

pub mod census;
pub mod ctx;
pub mod decode;
pub mod dominators;
pub mod gc;
pub mod graph;
pub mod label;
pub mod roots;
pub mod size;
pub mod types;
pub mod walk;

pub use census::{Census, TypeTally};
pub use ctx::Ctx;

/// Errors of the heap walk; they name the address and what was being read.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    #[error("the target was inside a garbage collection")]
    Collecting,
    #[error("a GC list was being modified (torn link at {addr:#x})")]
    Torn { addr: u64 },
    #[error("the tracemalloc tables were being modified ({what} at {addr:#x})")]
    TornTraces { what: &'static str, addr: u64 },
    #[error("cannot read {what} at {addr:#x}")]
    Unreadable { what: &'static str, addr: u64 },
    #[error("the interpreter state does not validate: {0}")]
    Invalid(String),
    #[error("{0}")]
    Other(String),
    #[error("layout: {0}")]
    Layout(#[from] crate::layout::LayoutError),
}

impl HeapError {
    /// Errors that a retry after letting the target run a little may cure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HeapError::Collecting | HeapError::Torn { .. } | HeapError::TornTraces { .. }
        )
    }
}
