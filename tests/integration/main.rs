//! The workspace integration suite.
