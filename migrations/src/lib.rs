//! retract-migrations
