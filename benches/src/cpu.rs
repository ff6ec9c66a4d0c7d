//! The calling thread's CPU time, so that a bench on a busy machine can say what the
//! code cost apart from the time its thread waited for a core (wall time counts both).

use std::time::Duration;

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`); `None`
/// where that clock is not available (outside Linux).
#[must_use]
pub fn thread_cpu_time() -> Option<Duration> {
    imp::thread_cpu_time()
}

/// What reading [`thread_cpu_time`] twice costs in thread CPU time itself (the
/// median of 201 back-to-back pairs), to subtract from a timed section: the clock is a
/// system call, a microsecond or two on some virtual machines.
#[must_use]
pub fn read_overhead() -> Duration {
    let mut pairs: Vec<Duration> = (0..201)
        .filter_map(|_| {
            let a = thread_cpu_time()?;
            let b = thread_cpu_time()?;
            Some(b.saturating_sub(a))
        })
        .collect();
    pairs.sort_unstable();
    pairs.get(pairs.len() / 2).copied().unwrap_or_default()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // One libc call through FFI, to avoid a dependency for it.
mod imp {
    use std::time::Duration;

    /// `struct timespec` of 64-bit Linux, where `time_t` and `long` are 64 bits; on
    /// 32-bit targets the function gives up instead (see the check below).
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }

    /// `CLOCK_THREAD_CPUTIME_ID` of `<time.h>` on Linux.
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }

    pub(super) fn thread_cpu_time() -> Option<Duration> {
        // The layout above is the C one only where `long` and `time_t` are 64 bits.
        if cfg!(not(target_pointer_width = "64")) {
            return None;
        }
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `struct timespec` for the duration of the
        // call, and clock_gettime writes nothing else.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Duration;

    pub(super) fn thread_cpu_time() -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_moves_forward_with_work() {
        let Some(a) = thread_cpu_time() else {
            return;
        };
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let b = thread_cpu_time().unwrap();
        assert!(b > a, "{a:?} then {b:?} ({x})");
    }
}
