//! retract-proto
