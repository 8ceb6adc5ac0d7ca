//! Decode errors: the JSON path and the problem, rendered exactly as the Python codec wrote them.

use std::fmt::Write;

/// One step of a JSON path.
#[derive(Debug, Clone)]
pub enum Step {
    Key(&'static str),
    Index(usize),
}

/// A JSON value as an error message shows it (the Python codec's `_show`).
#[derive(Debug, Clone)]
pub enum Shown {
    Null,
    Bool(bool),
    Object,
    List,
    Str(String),
    Int(i128),
    Float(f64),
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Show(Shown),
}

/// A problem with the data; `path` is innermost step first (callers add theirs on the way out).
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: Vec<Step>,
    pub parts: Vec<Part>,
}

#[derive(Debug)]
pub enum DecodeError {
    /// not JSON at all; the Python layer asks orjson for its exact words
    Syntax(super::parse::SyntaxError),
    Problem(Problem),
}

impl Problem {
    pub fn new(parts: Vec<Part>) -> Problem {
        Problem {
            path: Vec::new(),
            parts,
        }
    }

    pub fn at(mut self, step: Step) -> Problem {
        self.path.push(step);
        self
    }

    /// "path: problem", with `repr_str` giving Python's repr of a string.
    pub fn render(&self, repr_str: &dyn Fn(&str) -> String) -> String {
        let mut where_ = String::new();
        for step in self.path.iter().rev() {
            match step {
                Step::Key(k) => {
                    where_.push('.');
                    where_.push_str(k);
                }
                Step::Index(i) => {
                    let _ = write!(where_, "[{i}]");
                }
            }
        }
        let where_ = where_.trim_start_matches('.');
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Show(v) => text.push_str(&show(v, repr_str)),
            }
        }
        if where_.is_empty() {
            text
        } else {
            format!("{where_}: {text}")
        }
    }
}

pub fn show(v: &Shown, repr_str: &dyn Fn(&str) -> String) -> String {
    let text = match v {
        Shown::Null => return "null".into(),
        Shown::Bool(b) => return if *b { "true".into() } else { "false".into() },
        Shown::Object => return "an object".into(),
        Shown::List => return "a list".into(),
        Shown::Str(s) => repr_str(s),
        Shown::Int(n) => n.to_string(),
        Shown::Float(x) => python_float_repr(*x),
    };
    if text.chars().count() <= 80 {
        text
    } else {
        let mut t: String = text.chars().take(77).collect();
        t.push_str("...");
        t
    }
}

/// Shortest round-trip digits and decimal exponent of a finite non-zero |x|: x = 0.d1d2... * 10^(exp+1).
///
/// Rust's shortest form gives the number of digits; the digits themselves are the exact value
/// correctly rounded to that many (ties to even), as Python's repr() chooses them: of two
/// shortest forms equally near (x = 562949953421312.25), Rust's shortest picks ...312.3 and
/// Python ...312.2. A rounding that does not read back as x is never chosen.
pub fn shortest_digits(x: f64) -> (String, i32) {
    let shortest = format!("{:e}", x.abs());
    let (mantissa, _) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let n = mantissa.chars().filter(|c| *c != '.').count();
    let rounded = format!("{:.*e}", n - 1, x.abs());
    // At a power of two the gap below is half the gap above, so the nearer-looking tie
    // (2^-24 = 5.9604644775390625e-8 to ...062) may not read back as x; only then Rust's pick stands.
    let s = if rounded.parse::<f64>() == Ok(x.abs()) {
        rounded
    } else {
        shortest
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Decimal or scientific notation from shortest digits, with the thresholds and exponent style given.
pub fn format_float(
    x: f64,
    sci_below: i32,
    sci_from: i32,
    exp_min_digits: usize,
    out: &mut String,
) {
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let (d, e) = shortest_digits(x);
    let n = d.len() as i32;
    if e >= sci_below && e < sci_from {
        if e >= 0 {
            if n <= e + 1 {
                out.push_str(&d);
                for _ in 0..(e + 1 - n) {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&d[..(e + 1) as usize]);
                out.push('.');
                out.push_str(&d[(e + 1) as usize..]);
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-e - 1) {
                out.push('0');
            }
            out.push_str(&d);
        }
    } else {
        out.push_str(&d[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&d[1..]);
        }
        out.push('e');
        out.push(if e >= 0 { '+' } else { '-' });
        let digits = e.unsigned_abs().to_string();
        for _ in digits.len()..exp_min_digits {
            out.push('0');
        }
        out.push_str(&digits);
    }
}

/// Python's repr() of a finite float.
pub fn python_float_repr(x: f64) -> String {
    let mut s = String::new();
    format_float(x, -4, 16, 2, &mut s);
    s
}

/// An approximation of Python's repr() of a str, used where no interpreter is at hand (the
/// fuzz targets); the extension module uses the interpreter's own repr.
pub fn approx_python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa1).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
