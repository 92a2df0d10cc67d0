//! Hostile workloads: modules and native programs that abuse the engine, try to leave their
//! filesystem, or exhaust what they are given. Each case must end with a clear outcome (an
//! exit code, the reason on stderr, an error the workload sees), leave the node able to run
//! the next container, and leave nothing behind. Run with every engine on each containerd
//! version.

mod engine;
mod filesystem;
mod resources;
mod threads;

pub use engine::ENGINE;
pub use filesystem::FILESYSTEM;
pub use resources::RESOURCES;
pub use threads::{thread_bomb_if_asked, THREADS};
