//! FastCGI codec (in progress).
