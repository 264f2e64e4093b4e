//! Helpers shared by several test files.

/// The open handles of this process, found by asking about each handle value in
/// turn (values are multiples of 4, handed out lowest first; the count stops after
/// 4096 values in a row name nothing). `GetProcessHandleCount` would be simpler,
/// but Wine always answers 0.
#[cfg(windows)]
pub(crate) fn open_handle_count() -> usize {
    use windows_sys::Win32::Foundation::GetHandleInformation;
    let (mut count, mut misses, mut value) = (0, 0, 4usize);
    while misses < 4096 {
        let mut flags = 0u32;
        // SAFETY: only queries the flags of a handle value; a value that names
        // no handle fails with ERROR_INVALID_HANDLE.
        let ok =
            unsafe { GetHandleInformation(std::ptr::without_provenance_mut(value), &mut flags) };
        if ok != 0 {
            count += 1;
            misses = 0;
        } else {
            misses += 1;
        }
        value += 4;
    }
    count
}
