//! Per-device request rate limiting: a fixed one-minute window per device,
//! kept in memory (each relay node limits on its own).

use std::collections::HashMap;
use std::sync::Mutex;

use amana_core::DeviceId;

/// Counts requests per device per minute.
pub(crate) struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<DeviceId, (u64, u32)>>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request at `now`; `false` once the device is over its limit.
    pub(crate) fn allow(&self, device: DeviceId, now: u64) -> bool {
        let minute = now / 60;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(device).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_device_per_minute() {
        let limiter = RateLimiter::new(2);
        let a = DeviceId::from_bytes([1; 16]);
        let b = DeviceId::from_bytes([2; 16]);
        assert!(limiter.allow(a, 0));
        assert!(limiter.allow(a, 1));
        assert!(!limiter.allow(a, 2));
        assert!(limiter.allow(b, 2));
        assert!(limiter.allow(a, 60), "a new minute starts a new window");
    }
}
