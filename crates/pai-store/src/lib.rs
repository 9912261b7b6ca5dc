//! pai-store
