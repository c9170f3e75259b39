//! retract-server
