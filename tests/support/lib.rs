//! Helpers shared by the end-to-end tests: driving reference tools and building payload trees.
