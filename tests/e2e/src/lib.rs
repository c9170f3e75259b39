//! retract-e2e
