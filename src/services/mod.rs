//! Use cases shared by the HTTP surfaces (and later the Git watcher): they combine the domain,
//! the store and the target.

pub mod codepipeline_state;
pub mod pipelines;
