//! Reading tracemalloc's tables from outside (placeholder; being written).
