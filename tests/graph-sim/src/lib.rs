//! graph-sim: a Microsoft Graph and identity-platform simulator (work in progress, issue #3).
