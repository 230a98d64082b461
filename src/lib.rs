//! pymemspy: where a running CPython's memory went, read from outside the process.
//!
//! Layers, lowest first: `memory` (address spaces and snapshots), `target` (the process, its ELF files, version,
//! stop/resume), `layout` (per-version struct offsets), `heap` (walking objects, sizes, census), `output` (tables and
//! JSON), and the CLI in `main.rs`/`cli.rs`.

pub mod alloc;
pub mod analysis;
pub mod heap;
pub mod layout;
pub mod memory;
pub mod output;
pub mod snapshot;
pub mod target;
