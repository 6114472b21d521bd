//! A small canonical writer into SHA-256 for the state digest.

use sha2::{Digest, Sha256};

pub(crate) struct H(pub Sha256);

impl H {
    pub fn new() -> Self {
        Self(Sha256::new())
    }
    pub fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }
    pub fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.0.update(v.to_le_bytes());
    }
    /// Raw bytes of a fixed-size field.
    pub fn fixed(&mut self, v: &[u8]) {
        self.0.update(v);
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.update(v);
    }
    /// A length-prefixed list.
    pub fn list<'a, I>(&mut self, v: I)
    where
        I: IntoIterator<Item = &'a u64>,
        I::IntoIter: ExactSizeIterator,
    {
        let it = v.into_iter();
        self.u64(it.len() as u64);
        for x in it {
            self.u64(*x);
        }
    }
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}
