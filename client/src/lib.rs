//! retract-client
