//! The shared environment model, validation and config file of ephemerator.
