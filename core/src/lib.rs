//! The shared environment model, validation and config file of ephemerator.
//!
//! This crate is the one definition of an environment ("env") that `ephdash`, `ephctrl` and
//! `ephgateway` share:
//! - [`labels`]: label/annotation keys, env and child label sets, the env label selector;
//! - [`env`]: [`Env`] and [`EnvSpec`], parsed from and built into env ConfigMaps;
//! - [`status`]: [`Phase`], [`EnvStatus`] and [`Port`], the status ephctrl writes back;
//! - [`validate`]: the rules for repo, branch, path and identities;
//! - [`names`]: env names derived from user identities;
//! - [`hosts`]: the gateway's `PORT---ENV.<gatewayHost>` host names;
//! - [`lifecycle`]: deadlines, warnings and extensions of envs ([`lifecycle::Due`]);
//! - [`cluster`]: the API client and watch setup that survive API server restarts;
//! - [`config`]: the YAML config file ([`Config::load`]).

pub mod admin;
pub mod cluster;
pub mod config;
pub mod config_change;
pub mod env;
pub mod errors;
pub mod hosts;
pub mod labels;
pub mod lifecycle;
pub mod live_config;
pub mod logging;
pub mod names;
pub mod shutdown;
pub mod status;
pub mod validate;

pub use config::{Config, ConfigError, ConfigProblem, RepoEntry, SecretUrl};
pub use env::{Env, EnvSpec, env_config_map};
pub use errors::{FieldError, ValidationErrors};
pub use live_config::LiveConfig;
pub use status::{EnvStatus, Phase, Port};
