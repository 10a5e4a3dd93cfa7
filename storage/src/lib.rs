//! Courier's on-disk state: the session directory, download files and the resume-data codec.
//!
//! Empty for now: data tasks keep everything in memory. Download tasks and resume data (issue 3)
//! bring the session directory layout and the bincode-2 codec behind a versioned envelope here.
