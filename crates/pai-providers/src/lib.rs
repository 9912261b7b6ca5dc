//! pai-providers
