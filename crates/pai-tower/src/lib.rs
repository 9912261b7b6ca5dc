//! pai-tower
