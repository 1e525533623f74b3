//! Keys and values as etcd's `benchmark` makes them: a key is `--key-size` bytes holding the
//! zig-zag varint of its index (Go's `binary.PutVarint`), zero padded; indexes are sequential
//! or uniformly random in `[0, key-space-size)`; values are random printable bytes.

use bytes::Bytes;

/// A small deterministic PRNG (SplitMix64): the benchmark needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Go's `binary.PutVarint` of `v` into the start of `buf` (zig-zag, then 7 bits per byte);
/// bytes that do not fit are dropped, as a short etcd key buffer would panic instead.
pub fn put_varint(buf: &mut [u8], v: i64) {
    let mut ux = (v as u64) << 1;
    if v < 0 {
        ux = !ux;
    }
    let mut i = 0;
    while ux >= 0x80 && i < buf.len() {
        buf[i] = (ux as u8) | 0x80;
        ux >>= 7;
        i += 1;
    }
    if i < buf.len() {
        buf[i] = ux as u8;
    }
}

/// The key of index `index`, `size` bytes long.
pub fn key(index: u64, size: usize) -> Bytes {
    let mut k = vec![0u8; size];
    put_varint(&mut k, i64::try_from(index).unwrap_or(i64::MAX));
    Bytes::from(k)
}

/// `size` random printable bytes.
pub fn value(size: usize, rng: &mut Rng) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|_| ALPHABET[(rng.below(ALPHABET.len() as u64)) as usize])
        .collect::<Vec<u8>>()
        .into()
}

/// Chooses the key index of request `i`: `i mod space` with `--sequential-keys`, else random.
pub fn index(i: u64, space: u64, sequential: bool, rng: &mut Rng) -> u64 {
    if sequential {
        i % space.max(1)
    } else {
        rng.below(space.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_matches_gos_put_varint() {
        // Go: binary.PutVarint(buf, 1) = [0x02]; 64 = [0x80 0x01]; -1 = [0x01]; 300 = [0xd8 0x04].
        let enc = |v: i64| {
            let mut b = [0u8; 4];
            put_varint(&mut b, v);
            b
        };
        assert_eq!(enc(1), [0x02, 0, 0, 0]);
        assert_eq!(enc(64), [0x80, 0x01, 0, 0]);
        assert_eq!(enc(-1), [0x01, 0, 0, 0]);
        assert_eq!(enc(300), [0xd8, 0x04, 0, 0]);
    }

    #[test]
    fn keys_are_sized_and_distinct_per_index() {
        assert_eq!(key(5, 8).len(), 8);
        assert_eq!(key(5, 64).len(), 64);
        assert_ne!(key(5, 8), key(6, 8));
        let mut rng = Rng::new(1);
        assert_eq!(index(7, 5, true, &mut rng), 2);
        assert!((0..1000).all(|i| index(i, 10, false, &mut rng) < 10));
        assert_eq!(value(256, &mut rng).len(), 256);
    }
}
