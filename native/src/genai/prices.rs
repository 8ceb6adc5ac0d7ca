//! Cost estimates priced in the core from rates Python's price table gives once per model and
//! day (otlp_router/model/prices.py, `_Rates`): within a tier band genai-prices' price is affine
//! in the counts, so a call is priced with the same multiplications in the same order as
//! `_Rates._affine`, and so to the same floats.  A model whose prices are not affine has no
//! bands, and each of its calls is asked of `prices.estimate`.

use super::view::{Estimate, Priced};

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// One row per priced side (input, output, total): the constant, then per input token, output
/// token, cache read, cache write and reasoning token.
pub type Band = [[f64; 6]; 3];

/// One model's prices on one day, as `prices.rates` gives them.
pub struct Rates {
    pub model: String,
    pub provider: String,
    /// Input counts past which the next band applies, ascending.
    pub starts: Vec<i128>,
    /// None: priced call by call by the table.
    pub bands: Option<Vec<Band>>,
}

/// What a model and a day are looked up by: `prices._rates`' arguments.
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct Key {
    pub model: String,
    pub provider: Option<String>,
    pub day: Option<u64>,
}

impl Key {
    /// Whether `q` is looked up under this key (as `key(q)` would make it, without allocating).
    pub fn matches(&self, q: &Priced) -> bool {
        q.model == Some(self.model.as_str())
            && q.provider.filter(|p| !p.is_empty()) == self.provider.as_deref()
            && (q.at_unix_nano > 0).then_some(q.at_unix_nano / NS_PER_DAY) == self.day
            && (q.input.is_some() || q.output.is_some())
    }
}

/// Whether `estimate` would look anything up for `q` (it answers None at once otherwise), and
/// under which key.
pub fn key(q: &Priced) -> Option<Key> {
    let model = q.model.filter(|m| !m.is_empty())?;
    if q.input.is_none() && q.output.is_none() {
        return None;
    }
    Some(Key {
        model: model.to_owned(),
        provider: q.provider.filter(|p| !p.is_empty()).map(str::to_owned),
        day: (q.at_unix_nano > 0).then_some(q.at_unix_nano / NS_PER_DAY),
    })
}

/// The counts as Python's estimate is handed them (64-bit, as the core passes them).
fn count(n: Option<i128>) -> i128 {
    n.map_or(0, |n| n as i64 as i128)
}

/// `prices.estimate` for rates with bands; None where it answers None.
pub fn estimate(rates: &Rates, bands: &[Band], q: &Priced) -> Option<Estimate> {
    let (i, o) = (count(q.input), count(q.output));
    // Buckets past their count are clamped, as Python does, so the uncached rest is never negative.
    let cr = count(q.cache_read).min(i);
    let cw = count(q.cache_write).min(i - cr);
    let r = count(q.reasoning).min(o);
    let band = rates.starts.iter().filter(|&&s| i > s).count();
    let counts = [i as f64, o as f64, cr as f64, cw as f64, r as f64];
    let side = |row: &[f64; 6]| {
        let mut sum = row[0];
        for (rate, n) in row[1..].iter().zip(counts) {
            sum += rate * n;
        }
        sum
    };
    let rows = bands.get(band)?;
    let (input, output, total) = (side(&rows[0]), side(&rows[1]), side(&rows[2]));
    if !(input.is_finite() && output.is_finite() && total.is_finite()) {
        return None; // counts past any real call's: no estimate rather than an infinite one
    }
    Some(Estimate {
        input,
        output,
        total,
        model: rates.model.clone(),
        provider: rates.provider.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(input: Option<i128>, output: Option<i128>, cache_read: Option<i128>) -> Priced<'static> {
        Priced {
            model: Some("m"),
            provider: Some(""),
            at_unix_nano: 3 * NS_PER_DAY + 5,
            input,
            output,
            cache_read,
            cache_write: None,
            reasoning: None,
        }
    }

    #[test]
    fn the_key_is_pythons_lookup() {
        let k = key(&q(Some(1), None, None)).unwrap();
        assert_eq!((k.model.as_str(), k.provider, k.day), ("m", None, Some(3)));
        assert!(key(&q(None, None, Some(5))).is_none());
        let mut unnamed = q(Some(1), None, None);
        unnamed.model = Some("");
        assert!(key(&unnamed).is_none());
        unnamed.model = Some("m");
        unnamed.at_unix_nano = 0;
        assert_eq!(key(&unnamed).unwrap().day, None);
    }

    #[test]
    fn bands_switch_past_their_start_and_cache_reads_are_clamped() {
        let rates = Rates {
            model: "m".into(),
            provider: "p".into(),
            starts: vec![100],
            bands: None,
        };
        let low = [[0.0, 1.0, 2.0, 0.5, 0.0, 0.0]; 3];
        let high = [[0.0, 10.0, 20.0, 5.0, 0.0, 0.0]; 3];
        let bands = [low, high];
        let at = |i, o, cr| estimate(&rates, &bands, &q(Some(i), Some(o), Some(cr))).unwrap();
        assert_eq!(at(100, 1, 0).input, 102.0);
        assert_eq!(at(101, 1, 0).input, 1030.0);
        assert_eq!(at(10, 0, 50).input, 10.0 + 0.5 * 10.0); // cache reads past the input count
        let huge = [[0.0, f64::MAX, 0.0, 0.0, 0.0, 0.0]; 3];
        assert!(estimate(&rates, &[huge], &q(Some(10), Some(0), None)).is_none());
    }
}
