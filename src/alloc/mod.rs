//! Allocation data read from the target: tracemalloc's traces (block, size, traceback), joined to objects.

pub mod join;
pub mod tracemalloc;
