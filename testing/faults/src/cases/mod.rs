//! The cases, one module per subcommand. Each runs against the servers
//! it is given and returns one table row per server (or fuzz target).

pub mod fd_exhaustion;
pub mod fuzz;
pub mod hostile;
pub mod scale;
pub mod shutdown;
pub mod slowloris;
pub mod soak;
