//! pai-mock
