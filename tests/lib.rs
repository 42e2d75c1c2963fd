//! Shared helpers of the workspace integration suite.
