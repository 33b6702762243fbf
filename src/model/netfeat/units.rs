//! Quantities as people write them in topology files and on the `vnet impair` command line:
//! durations (`20ms`), percentages (`1%`, `0.5%`), rates (`10mbit`), sizes (`32kb`). Each
//! parser says what is wrong in words, for located diagnostics.

/// Nanoseconds from `20ms`, `1.5s`, `500us`, `100ns`. A unit is required: `tc` reads a bare
/// number as microseconds, people read it as milliseconds, so vnet refuses to guess.
pub fn parse_duration_ns(raw: &str) -> Result<u64, String> {
    let s = raw.trim().to_ascii_lowercase();
    let (num, unit) = split_unit(&s);
    let mult: f64 = match unit {
        "ns" => 1.0,
        "us" | "usec" | "µs" => 1e3,
        "ms" | "msec" => 1e6,
        "s" | "sec" => 1e9,
        "" => return Err(format!("`{raw}` has no unit; write e.g. `20ms`, `500us` or `1s`")),
        u => return Err(format!("unknown time unit `{u}` in `{raw}`; use ns, us, ms or s")),
    };
    let v: f64 = num.parse().map_err(|_| format!("`{raw}` is not a duration (e.g. `20ms`)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{raw}` is not a duration (e.g. `20ms`)"));
    }
    let ns = v * mult;
    if ns > 4_000_000_000_000.0 {
        return Err(format!("`{raw}` is too long (at most 4000s)"));
    }
    Ok(ns.round() as u64)
}

/// A percentage `1%`, `0.5%` (or a plain number, read as percent) as a fraction in 0..=1.
pub fn parse_percent(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    let num = s.strip_suffix('%').unwrap_or(s).trim();
    let v: f64 = num.parse().map_err(|_| format!("`{raw}` is not a percentage (e.g. `1%` or `0.5%`)"))?;
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        return Err(format!("`{raw}` is out of range: a percentage is between 0% and 100%"));
    }
    Ok(v / 100.0)
}

/// Bytes per second from `10mbit`, `1gbit`, `500kbit`, `64kbps` (bytes), `1000bit`. Like
/// `tc`, `k`/`m`/`g` are powers of 1000 and `bit` counts bits, `bps` bytes.
pub fn parse_rate_bytes(raw: &str) -> Result<u64, String> {
    let s = raw.trim().to_ascii_lowercase();
    let (num, unit) = split_unit(&s);
    let bits_mult: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        "" => return Err(format!("`{raw}` has no unit; write e.g. `10mbit` (bits/s) or `1mbps` (bytes/s)")),
        u => return Err(format!("unknown rate unit `{u}` in `{raw}`; use bit, kbit, mbit, gbit or bps, kbps, mbps, gbps")),
    };
    let v: f64 = num.parse().map_err(|_| format!("`{raw}` is not a rate (e.g. `10mbit`)"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("`{raw}` is not a positive rate"));
    }
    let bytes = v * bits_mult / 8.0;
    if bytes < 1.0 {
        return Err(format!("`{raw}` is below 8bit (one byte per second)"));
    }
    Ok(bytes.round() as u64)
}

/// Bytes from `32kb`, `1mb`, `1500b`, `1500` (bytes). `k`/`m` are powers of 1024, as in `tc`.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let s = raw.trim().to_ascii_lowercase();
    let (num, unit) = split_unit(&s);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit `{u}` in `{raw}`; use b, kb or mb")),
    };
    let v: f64 = num.parse().map_err(|_| format!("`{raw}` is not a size (e.g. `32kb`)"))?;
    if !v.is_finite() || v <= 0.0 || v * mult > u32::MAX as f64 {
        return Err(format!("`{raw}` is not a size between 1 byte and 4gb"));
    }
    Ok((v * mult).round() as u64)
}

/// Formats nanoseconds the way `tc` prints them (`20ms`, `500us`, `1.5s`).
pub fn format_duration(ns: u64) -> String {
    if ns >= 1_000_000_000 && ns % 1_000_000 == 0 {
        trim(ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        trim(ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        trim(ns as f64 / 1e3, "us")
    } else {
        format!("{ns}ns")
    }
}

/// Formats bytes/s as bits (`10mbit`).
pub fn format_rate(bytes: u64) -> String {
    let bits = bytes as f64 * 8.0;
    if bits >= 1e9 {
        trim(bits / 1e9, "gbit")
    } else if bits >= 1e6 {
        trim(bits / 1e6, "mbit")
    } else if bits >= 1e3 {
        trim(bits / 1e3, "kbit")
    } else {
        trim(bits, "bit")
    }
}

/// Formats a fraction as a percentage (`1%`, `0.5%`).
pub fn format_percent(f: f64) -> String {
    trim(f * 100.0, "%")
}

fn trim(v: f64, unit: &str) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

fn split_unit(s: &str) -> (&str, &str) {
    let i = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(s.len());
    (s[..i].trim(), s[i..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("20ms"), Ok(20_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns(" 500us "), Ok(500_000));
        assert_eq!(parse_duration_ns("20").unwrap_err(), "`20` has no unit; write e.g. `20ms`, `500us` or `1s`");
        assert!(parse_duration_ns("20 parsecs").unwrap_err().contains("unknown time unit `parsecs`"));
        assert!(parse_duration_ns("-1ms").is_err());
        assert_eq!(format_duration(20_000_000), "20ms");
        assert_eq!(format_duration(2_000_000_000), "2s");
        assert_eq!(format_duration(500_000), "500us");
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert_eq!(parse_percent("100"), Ok(1.0));
        assert!(parse_percent("101%").unwrap_err().contains("between 0% and 100%"));
        assert!(parse_percent("lots").unwrap_err().contains("not a percentage"));
        assert_eq!(format_percent(0.005), "0.5%");
    }

    #[test]
    fn rates_and_sizes() {
        assert_eq!(parse_rate_bytes("10mbit"), Ok(1_250_000));
        assert_eq!(parse_rate_bytes("1Gbit"), Ok(125_000_000));
        assert_eq!(parse_rate_bytes("64kbps"), Ok(64_000));
        assert!(parse_rate_bytes("10").unwrap_err().contains("has no unit"));
        assert!(parse_rate_bytes("10furlongs").unwrap_err().contains("unknown rate unit"));
        assert_eq!(format_rate(1_250_000), "10mbit");
        assert_eq!(parse_size("32kb"), Ok(32768));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert!(parse_size("0").is_err());
    }
}
