//! mp
#[doc(inline)]
pub use mp_macros::{entry, job, main};
#[doc(inline)]
pub use mp_runtime::*;
