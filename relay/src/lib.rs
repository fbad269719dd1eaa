//! Fjord relay.
