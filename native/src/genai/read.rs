//! The value readers the conventions table names (genai.py's `_text`, `_count`, `_content`,
//! ...), with Python's semantics: lenient, `None` when a value is unusable.  Where Python's
//! behaviour rests on something the core does not reproduce (Unicode digits in a number, a time
//! `datetime.fromisoformat` reads in one of its rarer forms), a reader says `Python`, and the
//! whole trace is made by Python instead.

use super::value::{self, Map, Value};
use crate::json::error::python_float_repr;

/// The core cannot say what Python would: Python makes this document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Python;

pub type Got = Result<Option<Value>, Python>;

pub const INT64_MAX: i128 = i64::MAX as i128;
pub const INT64_MIN: i128 = i64::MIN as i128;

/// `str.isspace()`: what Python's `strip()` / `split()` take away.
pub fn py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\x0b'
            | '\x0c'
            | '\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// A numeric string as Python's `int()` / `float()` see it: stripped, underscores between
/// digits removed; `Err` when something non-ASCII is left (Unicode digits: Python's).
fn numeric_text(s: &str) -> Result<Option<String>, Python> {
    let t = py_strip(s);
    if !t.is_ascii() {
        return Err(Python);
    }
    if !t.contains('_') {
        return Ok(Some(t.to_string()));
    }
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = i + 1 < b.len() && b[i + 1].is_ascii_digit();
            if !(before && after) {
                return Ok(None);
            }
        } else {
            out.push(c as char);
        }
    }
    Ok(Some(out))
}

/// Python's `int(text)`, base 10, or None where it raises (huge values saturate: only their
/// being past int64 matters to the readers).
fn py_int(text: &str) -> Option<i128> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let magnitude: i128 = if trimmed.len() > 30 {
        i128::MAX / 2
    } else {
        trimmed.parse().unwrap_or(0)
    };
    Some(if neg { -magnitude } else { magnitude })
}

/// Python's `float(text)` for ASCII text, or None where it raises.
fn py_float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return text.parse::<f64>().ok();
    }
    // Rust's grammar beyond Python's: none for decimal text; refuse anything else
    if body.is_empty()
        || !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok()
}

/// `_count`: a token count: int, or float / string holding one; negative or past int64 → None.
pub fn count(v: &Value) -> Result<Option<i128>, Python> {
    Ok(match v {
        Value::Int(n) => (0..=INT64_MAX).contains(n).then_some(*n),
        Value::Float(f) => float_count(*f),
        Value::Str(s) => {
            let Some(text) = numeric_text(s)? else {
                return Ok(None);
            };
            match py_int(&text) {
                Some(n) => (0..=INT64_MAX).contains(&n).then_some(n),
                None => py_float(&text).and_then(float_count),
            }
        }
        _ => None,
    })
}

fn float_count(f: f64) -> Option<i128> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if !(0.0..=9.3e18).contains(&f) {
        return None;
    }
    let n = f as i128;
    (0..=INT64_MAX).contains(&n).then_some(n)
}

/// `_usd`: a finite float from a number or a string holding one.
pub fn usd(v: &Value) -> Result<Option<f64>, Python> {
    let amount = match v {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Str(s) => {
            let Some(text) = numeric_text(s)? else {
                return Ok(None);
            };
            match py_float(&text) {
                Some(f) => f,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(amount.is_finite().then_some(amount))
}

/// `_offset`: a non-negative finite duration.
pub fn offset(v: &Value) -> Result<Option<f64>, Python> {
    Ok(usd(v)?.filter(|&f| f >= 0.0))
}

/// `_text`: a non-empty string (integers accepted).
pub fn text(v: &Value) -> Option<Value> {
    match v {
        Value::Str(s) if !s.is_empty() => Some(v.clone()),
        Value::Int(n) => Some(Value::Str(n.to_string())),
        _ => None,
    }
}

/// `_text` as a `str | None` for the engine's own comparisons.
pub fn text_str(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Int(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Python's `str(float)`.
pub fn float_str(f: f64) -> String {
    if f.is_nan() {
        "nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        python_float_repr(f)
    }
}

/// `_js_string`: a value as JavaScript's toString shows it.
pub fn js_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        Value::List(items) => Some(
            items
                .iter()
                .map(|x| {
                    if matches!(x, Value::Null) {
                        String::new()
                    } else {
                        js_string(x).unwrap_or_default()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(int_of_float(*f)),
        Value::Float(f) => Some(float_str(*f)),
        Value::Int(n) => Some(n.to_string()),
        Value::Str(s) => Some(s.clone()),
        other => Some(json_text(other)),
    }
}

/// `str(int(f))` for an integral finite float.
fn int_of_float(f: f64) -> String {
    if f.abs() < 1e38 {
        return (f as i128).to_string();
    }
    // exact digits of a large integral double: mantissa × 2^exp
    let bits = f.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    let mut digits: Vec<u32> = vec![0];
    let add = |digits: &mut Vec<u32>, mul: u64, add: u64| {
        let mut carry = add as u128;
        for d in digits.iter_mut() {
            let x = *d as u128 * mul as u128 + carry;
            *d = (x % 1_000_000_000) as u32;
            carry = x / 1_000_000_000;
        }
        while carry > 0 {
            digits.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    };
    add(&mut digits, 1, mantissa);
    for _ in 0..exp {
        add(&mut digits, 2, 0);
    }
    let mut s = if f < 0.0 {
        "-".to_string()
    } else {
        String::new()
    };
    s.push_str(&digits.last().unwrap().to_string());
    for d in digits.iter().rev().skip(1) {
        s.push_str(&format!("{d:09}"));
    }
    s
}

/// `orjson.dumps(_plain(value)).decode()`.
pub fn json_text(v: &Value) -> String {
    let mut out = Vec::new();
    value::write_json(&value::plain(v.clone(), 0), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `_content`.
pub fn content(v: &Value) -> Option<Value> {
    value::content(v)
}

/// `_mapping`: a dict, given structured or as a JSON string.
pub fn mapping(v: &Value) -> Option<Map> {
    match content(v) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    }
}

/// Langfuse's hasMeaningfulValue.
pub fn meaningful(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::List(l)) => !l.is_empty(),
        Some(Value::Map(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

/// `_param`: numbers and strings as they are, the rest as JSON text.
pub fn param(v: &Value) -> Value {
    match v {
        Value::Str(_) | Value::Int(_) | Value::Float(_) => value::plain(v.clone(), 0),
        other => Value::Str(json_text(other)),
    }
}

pub fn params(v: &Value) -> Option<Value> {
    let blob = mapping(v)?;
    if blob.is_empty() {
        return None;
    }
    let mut out = Map::new();
    for (k, x) in blob.iter() {
        out.insert(k.clone(), param(x));
    }
    Some(Value::Map(out))
}

/// `_tags`: from a list, a JSON list, a comma-separated string or a single string.
pub fn tags(v: &Value) -> Option<Value> {
    let mut list: Option<Vec<Value>> = None;
    if let Value::Str(s) = v {
        let text = py_strip(s);
        if text.starts_with('[') {
            if let Some(Value::List(items)) = value::parse_json(text) {
                list = Some(items);
            }
        }
        if list.is_none() {
            let items: Vec<Value> = if s.contains(',') {
                s.split(',')
                    .map(|t| py_strip(t).to_string())
                    .filter(|t| !t.is_empty())
                    .map(Value::Str)
                    .collect()
            } else if s.is_empty() {
                vec![]
            } else {
                vec![Value::Str(s.clone())]
            };
            return (!items.is_empty()).then_some(Value::List(items));
        }
    }
    let items = match (list, v) {
        (Some(items), _) => items,
        (None, Value::List(items)) => items.clone(),
        _ => return None,
    };
    let tags: Vec<Value> = items
        .iter()
        .filter_map(|t| match t {
            Value::Float(f) => Some(Value::Str(float_str(*f))),
            other => text(other),
        })
        .collect();
    (!tags.is_empty()).then_some(Value::List(tags))
}

pub fn level(v: &Value) -> Option<Value> {
    let Value::Str(s) = v else { return None };
    let up = py_strip(s).to_uppercase();
    let level = match up.as_str() {
        "DEBUG" | "TRACE" | "VERBOSE" => "DEBUG",
        "DEFAULT" | "INFO" | "LOG" | "NOTICE" | "OK" | "SUCCESS" => "DEFAULT",
        "WARNING" | "WARN" => "WARNING",
        "ERROR" | "FATAL" | "CRITICAL" => "ERROR",
        _ => return None,
    };
    Some(Value::Str(level.to_string()))
}

/// `_environment`: Langfuse's environment names.
pub fn environment(v: &Value) -> Option<Value> {
    let Value::Str(s) = v else { return None };
    if s.is_empty() {
        return None;
    }
    let mut text = s.to_lowercase();
    while let Some(rest) = text.strip_prefix("langfuse") {
        text = match rest.chars().next() {
            Some('-') | Some('_') => rest.trim_start_matches(['-', '_']).to_string(),
            _ => rest.to_string(),
        };
    }
    let text: String = text.chars().take(40).collect();
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    Some(Value::Str(text))
}

/// `iso_time` for the form every SDK writes ("YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±HH:MM]", bare or
/// JSON-quoted); anything else is Python's to read.
pub fn iso_time(v: &Value) -> Result<Option<Value>, Python> {
    let Value::Str(s) = v else { return Ok(None) };
    let mut text = py_strip(s);
    let unquoted;
    if text.starts_with('"') {
        match value::parse_json(text) {
            Some(Value::Str(inner)) => {
                unquoted = inner;
                text = &unquoted;
            }
            _ => return Ok(None),
        }
    }
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())?
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(Python);
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(Python);
    };
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n = end - start;
        if n != 3 && n != 6 {
            return Err(Python); // the other lengths: as Python 3.11 reads them, not here
        }
        micros = num(start..end).ok_or(Python)? * 10i64.pow(6 - n as u32);
        i = end;
    }
    let offset_s = match &b[i..] {
        b"" | b"Z" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let (Some(oh), Some(om)) = (num(i + 1..i + 3), num(i + 4..i + 6)) else {
                return Err(Python);
            };
            if oh > 23 || om > 59 {
                return Err(Python);
            }
            let s = oh * 3600 + om * 60;
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return Err(Python),
    };
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
        || y < 1
    {
        return Err(Python);
    }
    let days = days_from_civil(y, mo, d);
    let total = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    let (yy, _, _) = civil_from_days(total.div_euclid(86_400));
    if !(1..=9999).contains(&yy) {
        return Ok(None); // shifted past the calendar by its offset
    }
    Ok(Some(Value::Str(format_utc(total, micros))))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// "YYYY-MM-DDTHH:MM:SS.ffffffZ" of unix seconds and microseconds.
pub fn format_utc(seconds: i64, micros: i64) -> String {
    format_utc_fraction(seconds, micros, 6)
}

/// "YYYY-MM-DDTHH:MM:SS.<fraction>Z", the fraction given in `digits` digits (at least).
pub fn format_utc_fraction(seconds: i64, fraction: i64, digits: usize) -> String {
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    if !(0..=9999).contains(&y) || fraction < 0 {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{fraction:0digits$}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        );
    }
    // Digit by digit into bytes: format! is a tenth of an Aperture record's time otherwise,
    // and pushing chars to a String checks each one's UTF-8 length.
    let mut out = Vec::with_capacity(21 + digits);
    for (n, width, then) in [
        (y, 4, b'-'),
        (m, 2, b'-'),
        (d, 2, b'T'),
        (s / 3600, 2, b':'),
        (s / 60 % 60, 2, b':'),
        (s % 60, 2, b'.'),
        (fraction, digits, b'Z'),
    ] {
        push_padded(&mut out, n as u64, width);
        out.push(then);
    }
    String::from_utf8(out).unwrap_or_default() // ASCII
}

fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let (digits, at) = crate::json::encode::decimal(n);
    let digits = &digits[at..];
    out.resize(out.len() + width.saturating_sub(digits.len()), b'0');
    out.extend_from_slice(digits);
}

/// genai.py's `rfc3339` with 6 digits: a span time (unix nanoseconds).
pub fn rfc3339(unix_nano: u64) -> String {
    let seconds = (unix_nano / 1_000_000_000) as i64;
    let nanos = (unix_nano % 1_000_000_000) as i64;
    format_utc(seconds, nanos / 1000)
}

/// `_cost_details`.
pub fn cost_details(v: &Value) -> Result<Option<Value>, Python> {
    let Some(blob) = mapping(v) else {
        return Ok(None);
    };
    let mut out = Map::new();
    for (k, x) in blob.iter() {
        if let Some(amount) = usd(x)? {
            if amount >= 0.0 {
                out.insert(k.clone(), Value::Float(amount));
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Map(out)))
}

/// `_usage_details`: Langfuse's own keys, or an OpenAI usage object whose details become
/// buckets of their own, taken out of input / output.
pub fn usage_details(v: &Value) -> Result<Option<Value>, Python> {
    let Some(blob) = mapping(v) else {
        return Ok(None);
    };
    if blob.is_empty() {
        return Ok(None);
    }
    let has = |k: &str| blob.get(k).is_some();
    let shape: [&str; 4] = if has("prompt_tokens") || has("completion_tokens") {
        [
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        ]
    } else if has("input_tokens") || has("output_tokens") {
        [
            "input_tokens",
            "output_tokens",
            "input_tokens_details",
            "output_tokens_details",
        ]
    } else {
        let mut out = Map::new();
        for (k, x) in blob.iter() {
            if let Some(n) = count(x)? {
                out.insert(k.clone(), Value::Int(n));
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Map(out)));
    };
    let mut out = Map::new();
    for (k, x) in blob.iter() {
        if shape.contains(&k.as_str()) || k == "total_tokens" {
            continue;
        }
        if let Some(n) = count(x)? {
            out.insert(k.clone(), Value::Int(n));
        }
    }
    for (side, count_key, details_key) in [
        ("input", shape[0], shape[2]),
        ("output", shape[1], shape[3]),
    ] {
        let total = match blob.get(count_key) {
            Some(x) => count(x)?,
            None => None,
        };
        let mut taken: i128 = 0;
        if let Some(Value::Map(details)) = blob.get(details_key) {
            for (name, x) in details.iter() {
                if let Some(n) = count(x)? {
                    out.insert(format!("{side}_{name}"), Value::Int(n));
                    taken += n;
                }
            }
        }
        if let Some(c) = total {
            out.insert(side.to_string(), Value::Int((c - taken).max(0)));
        }
    }
    if let Some(x) = blob.get("total_tokens") {
        if let Some(total) = count(x)? {
            out.insert("total".to_string(), Value::Int(total));
        }
    }
    Ok((!out.is_empty()).then_some(Value::Map(out)))
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, format_utc_fraction};

    #[test]
    fn times_are_written_digit_by_digit_as_format_writes_them() {
        let mut seed = 11u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seconds = (seed >> 30) as i64 % 253_402_300_800; // years 1970 to 9999
            let (digits, fraction) = match seed % 3 {
                0 => (6, (seed % 1_000_000) as i64),
                1 => (9, (seed % 1_000_000_000) as i64),
                _ => (3, (seed % 100_000) as i64), // more digits than asked for
            };
            let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
            let s = seconds.rem_euclid(86_400);
            let expected = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{fraction:0digits$}Z",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            assert_eq!(format_utc_fraction(seconds, fraction, digits), expected);
        }
    }
}
