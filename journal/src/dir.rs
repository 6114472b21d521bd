//! What a journal directory holds: segment files, seal files (also of segments retention removed),
//! the writer's lock, and leftovers of an interrupted create (`*.tmp`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::format::parse_file_name;

/// Segment and seal files by first sequence.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Segment files, ordered by first sequence.
    pub segments: BTreeMap<u64, PathBuf>,
    /// Seal files, ordered by first sequence.
    pub seals: BTreeMap<u64, PathBuf>,
    /// Temporary files left by an interrupted create.
    pub temporaries: Vec<PathBuf>,
}

impl Listing {
    /// Reads `dir`.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let io_error = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut listing = Self::default();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(first) = parse_file_name(name, "journal") {
                listing.segments.insert(first, entry.path());
            } else if let Some(first) = parse_file_name(name, "seal") {
                listing.seals.insert(first, entry.path());
            } else if name.ends_with(".tmp") {
                listing.temporaries.push(entry.path());
            }
        }
        Ok(listing)
    }

    /// The segment holding `sequence`: the last one starting at or before it.
    #[must_use]
    pub fn segment_for(&self, sequence: u64) -> Option<(u64, &PathBuf)> {
        self.segments
            .range(..=sequence)
            .next_back()
            .map(|(first, path)| (*first, path))
    }

    /// The segment after the one starting at `first`.
    #[must_use]
    pub fn segment_after(&self, first: u64) -> Option<(u64, &PathBuf)> {
        self.segments
            .range(first + 1..)
            .next()
            .map(|(first, path)| (*first, path))
    }
}
