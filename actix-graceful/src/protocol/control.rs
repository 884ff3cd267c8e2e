//! The keeper's control pipe: one byte per word the keeper says to one of its generations. Pure.
//!
//! | byte | word | the generation |
//! |---|---|---|
//! | `R` | [`Control::Replaced`] | a newer generation serves: stop accepting and drain, but stay able to take back until `T` or `X` |
//! | `T` | [`Control::TakeBack`] | the newer generation failed: accept again and serve on |
//! | `X` | [`Control::Release`] | the newer generation passed its probation (or has none): finish the drain and exit |
//!
//! The pipe's end (the keeper is gone) is no word: the generation's parent-death signal does the
//! rest.

/// A word of the keeper to a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// A newer generation serves, on probation.
    Replaced,
    /// The newer generation failed: serve again.
    TakeBack,
    /// The newer generation passed: stop once drained.
    Release,
}

impl Control {
    /// The byte on the pipe.
    pub(crate) fn byte(self) -> u8 {
        match self {
            Control::Replaced => b'R',
            Control::TakeBack => b'T',
            Control::Release => b'X',
        }
    }

    /// The word a byte says; `None` for a byte of no meaning (skipped).
    pub(crate) fn from_byte(byte: u8) -> Option<Control> {
        [Control::Replaced, Control::TakeBack, Control::Release]
            .into_iter()
            .find(|c| c.byte() == byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_other_bytes_are_none() {
        for word in [Control::Replaced, Control::TakeBack, Control::Release] {
            assert_eq!(Control::from_byte(word.byte()), Some(word));
        }
        assert_eq!(Control::from_byte(b'?'), None);
        assert_eq!(Control::from_byte(0), None);
    }
}
