//! The channels' time formats. All three providers write China Standard
//! Time (UTC+8, no daylight saving): Alipay `yyyy-MM-dd HH:mm:ss`, UnionPay
//! `yyyyMMddHHmmss`, WeChat Pay RFC 3339 with `+08:00`.

const CST_OFFSET_SECS: i64 = 8 * 3600;

/// (year, month, day, hour, minute, second) in CST of `secs` since the epoch.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let local = secs + CST_OFFSET_SECS;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Seconds since the epoch of a CST civil time; `None` when out of range.
fn from_civil(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - CST_OFFSET_SECS)
}

/// Alipay's `yyyy-MM-dd HH:mm:ss`.
pub fn alipay_time(micros: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(micros.div_euclid(1_000_000));
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// Reads Alipay's `yyyy-MM-dd HH:mm:ss` into seconds since the epoch.
pub fn parse_alipay_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    from_civil(
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    )
}

/// UnionPay's `yyyyMMddHHmmss`.
pub fn unionpay_time(micros: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(micros.div_euclid(1_000_000));
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// RFC 3339 in CST, as WeChat Pay writes times.
pub fn wechat_time(micros: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(micros.div_euclid(1_000_000));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+08:00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_china_standard_time_and_reads_back() {
        // 2026-11-25T16:30:05Z is 2026-11-26 00:30:05 in Beijing.
        let micros = 1_795_624_205_000_000;
        assert_eq!(alipay_time(micros), "2026-11-26 00:30:05");
        assert_eq!(unionpay_time(micros), "20261126003005");
        assert_eq!(wechat_time(micros), "2026-11-26T00:30:05+08:00");
        assert_eq!(
            parse_alipay_time("2026-11-26 00:30:05"),
            Some(1_795_624_205)
        );
        assert_eq!(
            parse_alipay_time("2024-02-29 08:00:00"),
            Some(1_709_164_800)
        );
        for bad in [
            "2026-13-01 00:00:00",
            "2026-11-26T00:30:05",
            "",
            "2026-11-26 0a:30:05",
        ] {
            assert_eq!(parse_alipay_time(bad), None, "{bad}");
        }
    }
}
