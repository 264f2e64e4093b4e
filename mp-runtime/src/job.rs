//! The caller's view of a job: which functions can run in another process.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A function that can run in another process with arguments `Args` (a tuple).
///
/// Every fn item implements it when its arguments and return value are owned
/// serde types; whether it really is an `#[mp::job]` is checked when it is
/// used (`Error::NotAJob`), before any work is sent. You never implement this
/// trait yourself.
pub trait Job<Args>: Copy + Send + Sync + 'static {
    /// The job's return type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

macro_rules! impl_job {
    ($($arg:ident),*) => {
        impl<F, R, $($arg,)*> Job<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Copy + Send + Sync + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Output = R;
        }
    };
}

impl_job!();
impl_job!(A1);
impl_job!(A1, A2);
impl_job!(A1, A2, A3);
impl_job!(A1, A2, A3, A4);
impl_job!(A1, A2, A3, A4, A5);
impl_job!(A1, A2, A3, A4, A5, A6);
impl_job!(A1, A2, A3, A4, A5, A6, A7);
impl_job!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_job!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_job!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_job!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_job!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);
