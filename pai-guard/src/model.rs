//! The classifier: logistic regression over hashed features ([`crate::features`]), its
//! weights stored as 16-bit integers with one scale.
//!
//! File format (little endian): `PAIG`, a version byte (1), the table's bit width, two zero
//! bytes, then the bias, the scale and the default threshold as f32, then `1 << bits` i16
//! weights. The weights are read in place from the bytes compiled into the binary: nothing is
//! copied or allocated, and the pages are only touched when a text is scanned.

use crate::features;

const MAGIC: &[u8; 4] = b"PAIG";
const HEADER: usize = 20;

/// A classifier over a weight table held as bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    weights: &'a [u8],
    bias: f32,
    scale: f32,
    /// The score at or above which the model's author chose to block.
    pub threshold: f32,
}

impl<'a> Model<'a> {
    /// Read a model file, checking its header and length.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, String> {
        let head = bytes
            .get(..HEADER)
            .ok_or("the weights file is shorter than its header")?;
        if &head[..4] != MAGIC || head[4] != 1 {
            return Err("the weights file is not a version 1 pai guard model".to_owned());
        }
        if u32::from(head[5]) != features::BITS {
            return Err(format!(
                "the weights file has a {}-bit table; this build reads {}-bit tables",
                head[5],
                features::BITS
            ));
        }
        let f =
            |at: usize| f32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let weights = &bytes[HEADER..];
        if weights.len() != 2 << features::BITS {
            return Err("the weights file is cut short".to_owned());
        }
        Ok(Model {
            weights,
            bias: f(8),
            scale: f(12),
            threshold: f(16).min(1.0),
        })
    }

    /// The model as a file.
    pub fn write(weights: &[f32], bias: f32, threshold: f32) -> Vec<u8> {
        let max = weights.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-9);
        let scale = max / f32::from(i16::MAX);
        let mut out = Vec::with_capacity(HEADER + 2 * weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, features::BITS as u8, 0, 0]);
        out.extend_from_slice(&bias.to_le_bytes());
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend_from_slice(&threshold.to_le_bytes());
        for w in weights {
            out.extend_from_slice(&((w / scale).round() as i16).to_le_bytes());
        }
        out
    }

    fn weight(&self, i: usize) -> f32 {
        let b = [self.weights[2 * i], self.weights[2 * i + 1]];
        f32::from(i16::from_le_bytes(b)) * self.scale
    }

    /// The probability that the highest-scoring window of `text` (normalised) is an attack:
    /// one pass over its features, each window's sum and count taken from running totals.
    pub fn score_windows(&self, text: &str) -> f32 {
        let bounds = features::window_bounds(text);
        if bounds.len() == 1 {
            return self.score(text);
        }
        let mut sum = vec![0f32; text.len() + 1];
        let mut count = vec![0u32; text.len() + 1];
        features::for_each_at(text, |at, i| {
            sum[at + 1] += self.weight(i);
            count[at + 1] += 1;
        });
        for i in 1..sum.len() {
            sum[i] += sum[i - 1];
            count[i] += count[i - 1];
        }
        bounds
            .iter()
            .map(|&(s, e)| {
                let n = (count[e] - count[s]) as usize;
                sigmoid(self.bias + (sum[e] - sum[s]) / norm(n))
            })
            .fold(0f32, f32::max)
    }

    /// The probability that `window` (a normalised text) is an attack.
    pub fn score(&self, window: &str) -> f32 {
        let mut sum = 0f32;
        let mut n = 0u32;
        features::for_each(window, |i| {
            sum += self.weight(i);
            n += 1;
        });
        sigmoid(self.bias + sum / norm(n as usize))
    }
}

/// What a window's summed weights are divided by: the square root of its feature count, so
/// long and short texts score on one scale, but never less than that of a short sentence, so
/// that a few words cannot swing the score on their own.
pub fn norm(features: usize) -> f32 {
    (features.max(NORM_FLOOR) as f32).sqrt()
}

const NORM_FLOOR: usize = 96;

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
