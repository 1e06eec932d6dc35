//! IRC-safe text. The splitter is pure and the bridge in the core needs it too, so it lives
//! in [`crate::core::format::irc_text`]; the adapter keeps using it under this name.

pub use crate::core::format::irc_text::*;
