//! The fault harness: the test kit's TCP proxy against an echo server (no broker), and the seeded
//! fault soak on a 3-broker Apache Kafka cluster with its exact checker (`scripts/soak` runs the
//! soak alone, with a seed and a length).
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

mod fault_soak;
mod net_proxy;
