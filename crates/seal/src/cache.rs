//! Key cache (in progress).
